// config.json → ModelSpec for mixtral, qwen2_moe, qwen3_moe and olmoe (transformers 5 and classic hub spellings).
#include <algorithm>
#include <cmath>
#include <limits>

#include "engine/common/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/common/file_io.h"
#include "engine/common/status_macros.h"
#include "engine/model/json_fields.h"
#include "engine/model/model_spec.h"

namespace moed {
namespace {

struct FamilyInfo {
  Family family;
  std::string_view model_type;
  double default_rope_theta;  // transformers' default when the config names none
  double default_rms_norm_eps;
};

constexpr FamilyInfo kFamilies[] = {
    {Family::kMixtral, "mixtral", 1e6, 1e-5},
    {Family::kQwen2Moe, "qwen2_moe", 1e4, 1e-6},
    {Family::kQwen3Moe, "qwen3_moe", 1e4, 1e-6},
    {Family::kOlmoe, "olmoe", 1e4, 1e-5},
};

// Sanity caps that keep later size arithmetic far from overflow.
constexpr int64_t kMaxDim = 1 << 20;
constexpr int64_t kMaxLayers = 4096;
constexpr int64_t kMaxExperts = 1 << 16;
constexpr int64_t kMaxVocab = 1 << 24;

bool IsQwen(Family f) { return f == Family::kQwen2Moe || f == Family::kQwen3Moe; }

// A required integer in [1, max].
absl::StatusOr<int> PositiveInt(const JsonFields& f, std::string_view name, int64_t max = kMaxDim) {
  MOED_ASSIGN_OR_RETURN(int64_t v, f.Int(name));
  if (v < 1) return f.FieldError(name, Concat("must be positive, found ", v));
  if (v > max) return f.FieldError(name, Concat("is ", v, ", above the supported maximum ", max));
  return static_cast<int>(v);
}

// An optional integer in [1, max]; absent or null → fallback.
absl::StatusOr<int> PositiveIntOr(const JsonFields& f, std::string_view name, int fallback,
                                  int64_t max = kMaxDim) {
  if (!f.Has(name)) return fallback;
  return PositiveInt(f, name, max);
}

// A token id: a non-negative integer that fits an int.
absl::Status CheckTokenId(const JsonFields& f, std::string_view name, int64_t id) {
  if (id < 0 || id > std::numeric_limits<int>::max()) {
    return f.FieldError(name, Concat("holds token id ", id, ", outside [0, 2^31)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Family> ParseFamily(const JsonFields& f) {
  MOED_ASSIGN_OR_RETURN(std::string type, f.String("model_type"));
  for (const FamilyInfo& info : kFamilies) {
    if (info.model_type == type) return info.family;
  }
  std::vector<absl::string_view> names;
  for (const FamilyInfo& info : kFamilies) names.push_back(ToAbsl(info.model_type));
  return f.FieldError("model_type", Concat("is '", type, "', not one of the supported types: ",
                                                 absl::StrJoin(names, ", ")),
                      absl::StatusCode::kUnimplemented);
}

const FamilyInfo& InfoOf(Family family) {
  for (const FamilyInfo& info : kFamilies) {
    if (info.family == family) return info;
  }
  return kFamilies[0];
}

// Rejects a RoPE variant other than plain "default" in a rope_parameters / rope_scaling object.
absl::Status CheckRopeType(const JsonFields& rope, std::string_view object_name) {
  for (std::string_view key : {"rope_type", "type"}) {
    MOED_ASSIGN_OR_RETURN(std::optional<std::string> type, rope.OptionalString(key));
    if (type && *type != "default") {
      return rope.FieldError(key, Concat("is '", *type, "': only 'default' RoPE is supported (", object_name,
                                               " with another type)"),
                             absl::StatusCode::kUnimplemented);
    }
  }
  return absl::OkStatus();
}

// rope_parameters {rope_theta, rope_type} (transformers 5) or top-level rope_theta; rope_scaling.
absl::Status ParseRope(const JsonFields& cfg, std::string_view source, ModelSpec& spec) {
  double theta = InfoOf(spec.family).default_rope_theta;
  MOED_ASSIGN_OR_RETURN(theta, cfg.NumberOr("rope_theta", theta));
  if (const nlohmann::json* params = cfg.Find("rope_parameters"); params != nullptr && !params->is_null()) {
    if (!params->is_object()) return cfg.FieldError("rope_parameters", "must be an object");
    JsonFields rope(*params, source, "rope_parameters.");
    MOED_RETURN_IF_ERROR(CheckRopeType(rope, "rope_parameters"));
    MOED_ASSIGN_OR_RETURN(theta, rope.NumberOr("rope_theta", theta));
    if (!std::isfinite(theta) || theta <= 0) {
      return rope.FieldError("rope_theta", Concat("must be a positive number, found ", theta));
    }
  }
  if (!std::isfinite(theta) || theta <= 0) {
    return cfg.FieldError("rope_theta", Concat("must be a positive number, found ", theta));
  }
  if (const nlohmann::json* scaling = cfg.Find("rope_scaling"); scaling != nullptr && !scaling->is_null()) {
    if (!scaling->is_object()) return cfg.FieldError("rope_scaling", "must be an object or null");
    JsonFields rope(*scaling, source, "rope_scaling.");
    MOED_RETURN_IF_ERROR(CheckRopeType(rope, "rope_scaling"));
  }
  spec.rope_theta = static_cast<float>(theta);
  return absl::OkStatus();
}

// num_local_experts or num_experts (either spelling; both must agree when both are given).
absl::StatusOr<int> ParseNumExperts(const JsonFields& cfg, Family family) {
  const bool local = cfg.Has("num_local_experts");
  const bool plain = cfg.Has("num_experts");
  if (!local && !plain) {
    return cfg.FieldError(family == Family::kMixtral ? "num_local_experts" : "num_experts", "is missing");
  }
  if (local && plain) {
    MOED_ASSIGN_OR_RETURN(int a, PositiveInt(cfg, "num_local_experts", kMaxExperts));
    MOED_ASSIGN_OR_RETURN(int b, PositiveInt(cfg, "num_experts", kMaxExperts));
    if (a != b) {
      return cfg.FieldError("num_experts", Concat("is ", b, " but 'num_local_experts' is ", a));
    }
    return a;
  }
  return PositiveInt(cfg, local ? "num_local_experts" : "num_experts", kMaxExperts);
}

// Attention shape: heads, kv heads, head_dim, bias and q/k norm per family.
absl::Status ParseAttention(const JsonFields& cfg, ModelSpec& spec) {
  MOED_ASSIGN_OR_RETURN(spec.num_heads, PositiveInt(cfg, "num_attention_heads"));
  MOED_ASSIGN_OR_RETURN(spec.num_kv_heads, PositiveIntOr(cfg, "num_key_value_heads", spec.num_heads));
  if (spec.num_heads % spec.num_kv_heads != 0) {
    return cfg.FieldError("num_attention_heads", Concat("(", spec.num_heads,
                                                               ") must be a multiple of num_key_value_heads (",
                                                               spec.num_kv_heads, ")"));
  }
  if (cfg.Has("head_dim")) {
    MOED_ASSIGN_OR_RETURN(spec.head_dim, PositiveInt(cfg, "head_dim"));
  } else {
    if (spec.hidden_size % spec.num_heads != 0) {
      return cfg.FieldError("hidden_size", Concat("(", spec.hidden_size,
                                                         ") must be a multiple of num_attention_heads (",
                                                         spec.num_heads, ") when head_dim is not given"));
    }
    spec.head_dim = spec.hidden_size / spec.num_heads;
  }
  if (spec.head_dim % 2 != 0) {
    return cfg.FieldError("head_dim", Concat("is ", spec.head_dim, "; RoPE needs an even head_dim"));
  }

  switch (spec.family) {
    case Family::kMixtral:
      break;
    case Family::kQwen2Moe: {
      MOED_ASSIGN_OR_RETURN(spec.qkv_bias, cfg.BoolOr("qkv_bias", true));
      break;
    }
    case Family::kQwen3Moe:
    case Family::kOlmoe: {
      spec.qk_norm = spec.family == Family::kQwen3Moe ? QkNorm::kPerHead : QkNorm::kFull;
      MOED_ASSIGN_OR_RETURN(bool bias, cfg.BoolOr("attention_bias", false));
      if (bias) {
        return cfg.FieldError("attention_bias", "is true: attention projection biases (incl. o_proj) are not supported",
                              absl::StatusCode::kUnimplemented);
      }
      break;
    }
  }
  if (spec.family == Family::kOlmoe && cfg.Has("clip_qkv")) {
    return cfg.FieldError("clip_qkv", Concat("is ", JsonPreview(*cfg.Find("clip_qkv")),
                                                   ": clipping q/k/v is not supported"),
                          absl::StatusCode::kUnimplemented);
  }
  return absl::OkStatus();
}

// Sliding-window attention: mixtral `sliding_window` (null → 0); qwen only when use_sliding_window.
absl::Status ParseSlidingWindow(const JsonFields& cfg, ModelSpec& spec) {
  if (spec.family == Family::kMixtral) {
    MOED_ASSIGN_OR_RETURN(int64_t window, cfg.IntOr("sliding_window", 0));
    if (window < 0 || window > std::numeric_limits<int>::max()) {
      return cfg.FieldError("sliding_window", Concat("must be null or a non-negative integer, found ", window));
    }
    spec.sliding_window = static_cast<int>(window);
    return absl::OkStatus();
  }
  if (IsQwen(spec.family)) {
    MOED_ASSIGN_OR_RETURN(bool use, cfg.BoolOr("use_sliding_window", false));
    if (use) {
      return cfg.FieldError("use_sliding_window", "is true: per-layer sliding-window attention is not supported",
                            absl::StatusCode::kUnimplemented);
    }
  }
  spec.sliding_window = 0;
  return absl::OkStatus();
}

// MoE block: experts, top-k, widths, renormalisation, shared expert and which layers are sparse.
absl::Status ParseMoe(const JsonFields& cfg, ModelSpec& spec) {
  MOED_ASSIGN_OR_RETURN(spec.num_experts, ParseNumExperts(cfg, spec.family));
  MOED_ASSIGN_OR_RETURN(spec.top_k, PositiveInt(cfg, "num_experts_per_tok", kMaxExperts));
  if (spec.top_k > spec.num_experts) {
    return cfg.FieldError("num_experts_per_tok", Concat("(", spec.top_k, ") must not exceed the number of experts (",
                                                               spec.num_experts, ")"));
  }
  spec.layer_is_moe.assign(spec.num_layers, true);
  switch (spec.family) {
    case Family::kMixtral: {
      spec.norm_topk_prob = true;
      MOED_ASSIGN_OR_RETURN(spec.moe_intermediate_size, PositiveInt(cfg, "intermediate_size"));
      return absl::OkStatus();
    }
    case Family::kOlmoe: {
      MOED_ASSIGN_OR_RETURN(spec.norm_topk_prob, cfg.BoolOr("norm_topk_prob", false));
      MOED_ASSIGN_OR_RETURN(spec.moe_intermediate_size, PositiveInt(cfg, "intermediate_size"));
      return absl::OkStatus();
    }
    case Family::kQwen2Moe:
    case Family::kQwen3Moe:
      break;
  }
  MOED_ASSIGN_OR_RETURN(spec.norm_topk_prob, cfg.BoolOr("norm_topk_prob", false));
  MOED_ASSIGN_OR_RETURN(spec.moe_intermediate_size, PositiveInt(cfg, "moe_intermediate_size"));
  MOED_ASSIGN_OR_RETURN(spec.dense_intermediate_size, PositiveInt(cfg, "intermediate_size"));
  if (spec.family == Family::kQwen2Moe) {
    MOED_ASSIGN_OR_RETURN(int64_t shared, cfg.Int("shared_expert_intermediate_size"));
    if (shared < 0 || shared > kMaxDim) {
      return cfg.FieldError("shared_expert_intermediate_size", Concat("must be in [0, ", kMaxDim, "], found ", shared));
    }
    spec.shared_expert_intermediate_size = static_cast<int>(shared);
  }
  MOED_ASSIGN_OR_RETURN(int step, PositiveIntOr(cfg, "decoder_sparse_step", 1, kMaxLayers));
  MOED_ASSIGN_OR_RETURN(std::vector<int64_t> mlp_only, cfg.IntList("mlp_only_layers"));
  for (int64_t l : mlp_only) {
    if (l < 0 || l >= spec.num_layers) {
      return cfg.FieldError("mlp_only_layers", Concat("names layer ", l, ", outside [0, ", spec.num_layers, ")"));
    }
  }
  for (int l = 0; l < spec.num_layers; ++l) {
    const bool dense_only = std::find(mlp_only.begin(), mlp_only.end(), l) != mlp_only.end();
    spec.layer_is_moe[l] = !dense_only && (l + 1) % step == 0;
  }
  return absl::OkStatus();
}

absl::Status ParseSpecialTokens(const JsonFields& cfg, ModelSpec& spec) {
  MOED_ASSIGN_OR_RETURN(std::optional<int64_t> bos, cfg.OptionalInt("bos_token_id"));
  if (bos) {
    MOED_RETURN_IF_ERROR(CheckTokenId(cfg, "bos_token_id", *bos));
    spec.bos_token_id = static_cast<int>(*bos);
  }
  MOED_ASSIGN_OR_RETURN(std::vector<int64_t> eos, cfg.IntOrIntList("eos_token_id"));
  for (int64_t id : eos) {
    MOED_RETURN_IF_ERROR(CheckTokenId(cfg, "eos_token_id", id));
    spec.eos_token_ids.push_back(static_cast<int>(id));
  }
  return absl::OkStatus();
}

}  // namespace

std::string_view FamilyName(Family f) { return InfoOf(f).model_type; }

absl::StatusOr<ModelSpec> ParseModelConfig(std::string_view json_text, std::string_view source) {
  MOED_ASSIGN_OR_RETURN(nlohmann::json root, ParseJsonText(json_text, source));
  if (!root.is_object()) {
    return absl::InvalidArgumentError(Concat(source, ": top level must be a JSON object"));
  }
  const JsonFields cfg(root, source);
  ModelSpec spec;
  MOED_ASSIGN_OR_RETURN(spec.family, ParseFamily(cfg));
  MOED_ASSIGN_OR_RETURN(std::optional<std::string> act, cfg.OptionalString("hidden_act"));
  if (act && *act != "silu") {
    return cfg.FieldError("hidden_act", Concat("is '", *act, "': only 'silu' is supported"),
                          absl::StatusCode::kUnimplemented);
  }
  MOED_ASSIGN_OR_RETURN(spec.vocab_size, PositiveInt(cfg, "vocab_size", kMaxVocab));
  MOED_ASSIGN_OR_RETURN(spec.hidden_size, PositiveInt(cfg, "hidden_size"));
  MOED_ASSIGN_OR_RETURN(spec.num_layers, PositiveInt(cfg, "num_hidden_layers", kMaxLayers));
  MOED_ASSIGN_OR_RETURN(spec.max_position_embeddings,
                        PositiveInt(cfg, "max_position_embeddings", std::numeric_limits<int>::max()));
  MOED_ASSIGN_OR_RETURN(double eps, cfg.NumberOr("rms_norm_eps", InfoOf(spec.family).default_rms_norm_eps));
  if (!std::isfinite(eps) || eps <= 0 || eps >= 1) {
    return cfg.FieldError("rms_norm_eps", Concat("must be in (0, 1), found ", eps));
  }
  spec.rms_norm_eps = static_cast<float>(eps);
  MOED_RETURN_IF_ERROR(ParseAttention(cfg, spec));
  MOED_RETURN_IF_ERROR(ParseRope(cfg, source, spec));
  MOED_RETURN_IF_ERROR(ParseSlidingWindow(cfg, spec));
  MOED_RETURN_IF_ERROR(ParseMoe(cfg, spec));
  MOED_ASSIGN_OR_RETURN(spec.tie_word_embeddings, cfg.BoolOr("tie_word_embeddings", false));
  MOED_RETURN_IF_ERROR(ParseSpecialTokens(cfg, spec));
  return spec;
}

absl::StatusOr<ModelSpec> LoadModelSpec(const std::string& model_dir) {
  const std::string path = JoinPath(model_dir, "config.json");
  MOED_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  return ParseModelConfig(text, path);
}

}  // namespace moed
