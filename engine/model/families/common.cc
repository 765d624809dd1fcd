// The family registry and the config-parsing helpers several families share.
#include <algorithm>
#include <cmath>

#include "absl/strings/str_join.h"
#include "engine/common/status_macros.h"
#include "engine/common/str_cat.h"
#include "engine/model/config_fields.h"
#include "engine/model/families/family.h"
#include "engine/model/rope.h"

namespace moed {
namespace {

const FamilyDef* const kAll[] = {&kMixtralFamily, &kQwen2MoeFamily, &kQwen3MoeFamily,
                                 &kOlmoeFamily,   &kDeepseekV2Family, &kDeepseekV3Family};

}  // namespace

const FamilyDef* FindFamily(std::string_view model_type) {
  for (const FamilyDef* f : kAll) {
    if (f->model_type == model_type) return f;
  }
  return nullptr;
}

const FamilyDef& FamilyDefOf(Family family) {
  for (const FamilyDef* f : kAll) {
    if (f->family == family) return *f;
  }
  return *kAll[0];
}

std::vector<std::string_view> SupportedModelTypes() {
  std::vector<std::string_view> out;
  for (const FamilyDef* f : kAll) out.push_back(f->model_type);
  return out;
}

std::string_view FamilyName(Family f) { return FamilyDefOf(f).model_type; }

namespace family {

using config::PositiveInt;
using config::PositiveIntOr;

absl::Status ParseGqaAttention(const JsonFields& cfg, std::string_view source, double default_theta,
                               ModelSpec& spec) {
  AttentionSpec& a = spec.attention;
  a.kind = AttentionKind::kGqa;
  MOED_ASSIGN_OR_RETURN(a.num_heads, PositiveInt(cfg, "num_attention_heads"));
  MOED_ASSIGN_OR_RETURN(a.num_kv_heads, PositiveIntOr(cfg, "num_key_value_heads", a.num_heads));
  if (a.num_heads % a.num_kv_heads != 0) {
    return cfg.FieldError("num_attention_heads", Concat("(", a.num_heads,
                                                        ") must be a multiple of num_key_value_heads (",
                                                        a.num_kv_heads, ")"));
  }
  if (cfg.Has("head_dim")) {
    MOED_ASSIGN_OR_RETURN(a.head_dim, PositiveInt(cfg, "head_dim"));
  } else {
    if (spec.hidden_size % a.num_heads != 0) {
      return cfg.FieldError("hidden_size", Concat("(", spec.hidden_size,
                                                  ") must be a multiple of num_attention_heads (", a.num_heads,
                                                  ") when head_dim is not given"));
    }
    a.head_dim = spec.hidden_size / a.num_heads;
  }
  if (a.head_dim % 2 != 0) {
    return cfg.FieldError("head_dim", Concat("is ", a.head_dim, "; RoPE needs an even head_dim"));
  }
  a.qk_head_dim = a.v_head_dim = a.head_dim;
  a.softmax_scale = 1.0f / std::sqrt(static_cast<float>(a.head_dim));
  MOED_ASSIGN_OR_RETURN(a.rope, ParseRopeSpec(cfg, source, default_theta, a.head_dim, spec.max_position_embeddings));
  return absl::OkStatus();
}

absl::Status ParseExperts(const JsonFields& cfg, std::string_view missing_key,
                          std::initializer_list<std::string_view> keys, ModelSpec& spec) {
  std::string_view first_given;
  for (std::string_view key : keys) {
    if (!cfg.Has(key)) continue;
    MOED_ASSIGN_OR_RETURN(int n, PositiveInt(cfg, key, config::kMaxExperts));
    if (first_given.empty()) {
      first_given = key;
      spec.num_experts = n;
    } else if (n != spec.num_experts) {
      return cfg.FieldError(key, Concat("is ", n, " but '", first_given, "' is ", spec.num_experts));
    }
  }
  if (first_given.empty()) return cfg.FieldError(missing_key, "is missing");
  MOED_ASSIGN_OR_RETURN(spec.top_k, PositiveInt(cfg, "num_experts_per_tok", config::kMaxExperts));
  if (spec.top_k > spec.num_experts) {
    return cfg.FieldError("num_experts_per_tok", Concat("(", spec.top_k,
                                                        ") must not exceed the number of experts (",
                                                        spec.num_experts, ")"));
  }
  return absl::OkStatus();
}

absl::Status ParseSparseStep(const JsonFields& cfg, ModelSpec& spec) {
  MOED_ASSIGN_OR_RETURN(int step, PositiveIntOr(cfg, "decoder_sparse_step", 1, config::kMaxLayers));
  MOED_ASSIGN_OR_RETURN(std::vector<int64_t> mlp_only, cfg.IntList("mlp_only_layers"));
  for (int64_t l : mlp_only) {
    if (l < 0 || l >= spec.num_layers) {
      return cfg.FieldError("mlp_only_layers", Concat("names layer ", l, ", outside [0, ", spec.num_layers, ")"));
    }
  }
  spec.layer_is_moe.assign(spec.num_layers, true);
  for (int l = 0; l < spec.num_layers; ++l) {
    const bool dense_only = std::find(mlp_only.begin(), mlp_only.end(), l) != mlp_only.end();
    spec.layer_is_moe[l] = !dense_only && (l + 1) % step == 0;
  }
  return absl::OkStatus();
}

absl::Status RejectAttentionBias(const JsonFields& cfg) {
  MOED_ASSIGN_OR_RETURN(bool bias, cfg.BoolOr("attention_bias", false));
  if (bias) {
    return cfg.FieldError("attention_bias", "is true: attention projection biases (incl. o_proj) are not supported",
                          absl::StatusCode::kUnimplemented);
  }
  return absl::OkStatus();
}

}  // namespace family
}  // namespace moed
