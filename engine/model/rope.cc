// RoPE parsing and inverse frequencies (default, linear, dynamic NTK, YaRN).
#include "engine/model/rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <optional>
#include <string>

#include "engine/common/str_cat.h"
#include "engine/common/status_macros.h"
#include "engine/model/config_fields.h"

namespace moed {
namespace {

absl::StatusOr<RopeType> ParseType(const JsonFields& rope) {
  std::optional<std::string> type;
  for (std::string_view key : {"rope_type", "type"}) {
    MOED_ASSIGN_OR_RETURN(std::optional<std::string> t, rope.OptionalString(key));
    if (!t) continue;
    if (type && *type != *t) {
      return rope.FieldError(key, Concat("is '", *t, "' but the other spelling says '", *type, "'"));
    }
    type = t;
    if (*t == "default") continue;
    if (*t == "linear" || *t == "dynamic" || *t == "yarn") continue;
    return rope.FieldError(key, Concat("is '", *t, "': supported RoPE types are default, linear, dynamic and yarn"),
                           absl::StatusCode::kUnimplemented);
  }
  if (!type || *type == "default") return RopeType::kDefault;
  if (*type == "linear") return RopeType::kLinear;
  if (*type == "dynamic") return RopeType::kDynamic;
  return RopeType::kYarn;
}

absl::StatusOr<float> FloatOr(const JsonFields& f, std::string_view name, double fallback) {
  MOED_ASSIGN_OR_RETURN(double v, f.NumberOr(name, fallback));
  if (!std::isfinite(v) || std::fabs(v) > 1e30) return f.FieldError(name, Concat("must be a finite number, found ", v));
  return static_cast<float>(v);
}

// The scaling fields of a non-default rope object.
absl::Status ParseScaling(const JsonFields& rope, int max_position, RopeSpec& spec) {
  MOED_ASSIGN_OR_RETURN(spec.original_max_position,
                        config::PositiveIntOr(rope, "original_max_position_embeddings", max_position,
                                              std::numeric_limits<int>::max()));
  if (!rope.Has("factor")) {
    // transformers: yarn without a factor extends from the original length to max_position_embeddings.
    if (spec.type != RopeType::kYarn || !rope.Has("original_max_position_embeddings")) {
      return rope.FieldError("factor", "is missing (needed by this RoPE type)");
    }
    spec.factor = static_cast<float>(static_cast<double>(max_position) / spec.original_max_position);
  } else {
    MOED_ASSIGN_OR_RETURN(double factor, config::PositiveNumberOr(rope, "factor", 1.0));
    spec.factor = static_cast<float>(factor);
  }
  if (spec.type != RopeType::kYarn) return absl::OkStatus();
  MOED_ASSIGN_OR_RETURN(spec.beta_fast, FloatOr(rope, "beta_fast", 32.0));
  MOED_ASSIGN_OR_RETURN(spec.beta_slow, FloatOr(rope, "beta_slow", 1.0));
  MOED_ASSIGN_OR_RETURN(spec.mscale, FloatOr(rope, "mscale", 0.0));
  MOED_ASSIGN_OR_RETURN(spec.mscale_all_dim, FloatOr(rope, "mscale_all_dim", 0.0));
  if (rope.Has("attention_factor")) {
    MOED_ASSIGN_OR_RETURN(spec.attention_factor, FloatOr(rope, "attention_factor", 1.0));
  } else if (spec.mscale != 0 && spec.mscale_all_dim != 0) {
    spec.attention_factor = YarnMscale(spec.factor, spec.mscale) / YarnMscale(spec.factor, spec.mscale_all_dim);
  } else {
    spec.attention_factor = YarnMscale(spec.factor, 1.0f);
  }
  MOED_ASSIGN_OR_RETURN(bool truncate, rope.BoolOr("truncate", true));
  if (!truncate) {
    return rope.FieldError("truncate", "is false: only truncated YaRN correction ranges are supported",
                           absl::StatusCode::kUnimplemented);
  }
  return absl::OkStatus();
}

}  // namespace

float YarnMscale(float scale, float mscale) {
  if (scale <= 1.0f) return 1.0f;
  return static_cast<float>(0.1 * mscale * std::log(static_cast<double>(scale)) + 1.0);
}

absl::StatusOr<RopeSpec> ParseRopeSpec(const JsonFields& cfg, std::string_view source, double default_theta, int dim,
                                       int max_position) {
  RopeSpec spec;
  spec.dim = dim;
  MOED_ASSIGN_OR_RETURN(double theta, cfg.NumberOr("rope_theta", default_theta));
  // The scaling comes from the first object whose type is not 'default'; a second one must agree on the type.
  std::optional<JsonFields> scaling;
  std::string scaling_key;
  for (std::string_view key : {"rope_parameters", "rope_scaling"}) {
    const nlohmann::json* obj = cfg.Find(key);
    if (obj == nullptr || obj->is_null()) continue;
    if (!obj->is_object()) return cfg.FieldError(key, "must be an object or null");
    JsonFields fields(*obj, source, Concat(key, "."));
    if (key == "rope_parameters") {
      MOED_ASSIGN_OR_RETURN(theta, fields.NumberOr("rope_theta", theta));
      if (!std::isfinite(theta) || theta <= 0) {
        return fields.FieldError("rope_theta", Concat("must be a positive number, found ", theta));
      }
    }
    MOED_ASSIGN_OR_RETURN(RopeType type, ParseType(fields));
    if (type == RopeType::kDefault) continue;
    if (scaling && type != spec.type) {
      return cfg.FieldError(key, Concat("names another RoPE type than '", scaling_key, "'"));
    }
    if (!scaling) {
      scaling.emplace(fields);
      scaling_key = std::string(key);
      spec.type = type;
    }
  }
  if (!std::isfinite(theta) || theta <= 0) {
    return cfg.FieldError("rope_theta", Concat("must be a positive number, found ", theta));
  }
  spec.theta = static_cast<float>(theta);
  if (scaling) MOED_RETURN_IF_ERROR(ParseScaling(*scaling, max_position, spec));
  return spec;
}

std::vector<float> RopeInvFreq(const RopeSpec& rope, int64_t seq_len) {
  const int half = rope.dim / 2;
  const float dim = static_cast<float>(rope.dim);
  float base = rope.theta;
  if (rope.type == RopeType::kDynamic && seq_len > rope.original_max_position) {
    const double grown = rope.factor * static_cast<double>(seq_len) / rope.original_max_position - (rope.factor - 1);
    base = static_cast<float>(base * std::pow(grown, static_cast<double>(dim) / (dim - 2)));
  }
  std::vector<float> inv(half);
  for (int i = 0; i < half; ++i) {
    const float exponent = static_cast<float>(2 * i) / dim;
    inv[i] = 1.0f / std::pow(base, exponent);
  }
  if (rope.type == RopeType::kLinear) {
    for (float& f : inv) f /= rope.factor;
  } else if (rope.type == RopeType::kYarn) {
    // Dims whose wavelength fits the original context keep their frequency (extrapolation), the long ones are
    // divided by factor (interpolation), with a linear ramp between the correction dims of beta_fast and beta_slow.
    auto correction_dim = [&](float rotations) {
      return (dim * std::log(rope.original_max_position / (rotations * 2 * std::numbers::pi))) /
             (2 * std::log(static_cast<double>(rope.theta)));
    };
    const double low = std::max(std::floor(correction_dim(rope.beta_fast)), 0.0);
    double high = std::min(std::ceil(correction_dim(rope.beta_slow)), static_cast<double>(rope.dim - 1));
    if (low == high) high += 0.001;
    for (int i = 0; i < half; ++i) {
      const float ramp = std::clamp(static_cast<float>((static_cast<float>(i) - static_cast<float>(low)) /
                                                       static_cast<float>(high - low)),
                                    0.0f, 1.0f);
      const float extrapolation = 1.0f - ramp;
      const float interpolated = 1.0f / (rope.factor * std::pow(rope.theta, static_cast<float>(2 * i) / dim));
      inv[i] = interpolated * (1.0f - extrapolation) + inv[i] * extrapolation;
    }
  }
  return inv;
}

namespace {

// cos and sin of pair i's angle at `pos` (in double, rounded to float), times rope.attention_factor.
inline void CosSinOf(const RopeSpec& rope, const float* inv_freq, int i, int32_t pos, float* c, float* s) {
  const float angle = inv_freq[i] * static_cast<float>(pos);
  *c = static_cast<float>(std::cos(static_cast<double>(angle)));
  *s = static_cast<float>(std::sin(static_cast<double>(angle)));
  if (rope.attention_factor != 1.0f) {
    *c *= rope.attention_factor;
    *s *= rope.attention_factor;
  }
}

// Rotates pair i of v by (c, s).
inline void RotatePair(const RopeSpec& rope, int i, float c, float s, float* v) {
  const int half = rope.dim / 2;
  float& a = rope.interleave ? v[2 * i] : v[i];
  float& b = rope.interleave ? v[2 * i + 1] : v[i + half];
  const float x = a, y = b;
  a = x * c - y * s;
  b = y * c + x * s;
}

}  // namespace

void RopeCosSin(const RopeSpec& rope, const float* inv_freq, int32_t pos, float* cos, float* sin) {
  for (int i = 0; i < rope.dim / 2; ++i) CosSinOf(rope, inv_freq, i, pos, &cos[i], &sin[i]);
}

void ApplyRopeCosSin(const RopeSpec& rope, const float* cos, const float* sin, float* v) {
  for (int i = 0; i < rope.dim / 2; ++i) RotatePair(rope, i, cos[i], sin[i], v);
}

void ApplyRope(const RopeSpec& rope, const float* inv_freq, int32_t pos, float* v) {
  for (int i = 0; i < rope.dim / 2; ++i) {
    float c, s;
    CosSinOf(rope, inv_freq, i, pos, &c, &s);
    RotatePair(rope, i, c, s, v);
  }
}

}  // namespace moed
