// Qwen2-MoE (q/k/v bias, a shared expert with a sigmoid gate) and Qwen3-MoE (per-head q/k RMSNorm); both softmax
// top-k, dense layers from mlp_only_layers / decoder_sparse_step.
#include "engine/common/status_macros.h"
#include "engine/common/str_cat.h"
#include "engine/model/config_fields.h"
#include "engine/model/families/family.h"

namespace moed {
namespace {

absl::Status ParseCommon(const JsonFields& cfg, std::string_view source, double theta, ModelSpec& spec) {
  MOED_RETURN_IF_ERROR(family::ParseGqaAttention(cfg, source, theta, spec));
  MOED_ASSIGN_OR_RETURN(bool sliding, cfg.BoolOr("use_sliding_window", false));
  if (sliding) {
    return cfg.FieldError("use_sliding_window", "is true: per-layer sliding-window attention is not supported",
                          absl::StatusCode::kUnimplemented);
  }
  MOED_RETURN_IF_ERROR(family::ParseExperts(cfg, "num_experts", {"num_local_experts", "num_experts"}, spec));
  MOED_ASSIGN_OR_RETURN(spec.router.norm_topk_prob, cfg.BoolOr("norm_topk_prob", false));
  MOED_ASSIGN_OR_RETURN(spec.moe_intermediate_size, config::PositiveInt(cfg, "moe_intermediate_size"));
  MOED_ASSIGN_OR_RETURN(spec.dense_intermediate_size, config::PositiveInt(cfg, "intermediate_size"));
  return absl::OkStatus();
}

absl::Status ParseQwen2(const JsonFields& cfg, std::string_view source, ModelSpec& spec) {
  MOED_RETURN_IF_ERROR(ParseCommon(cfg, source, kQwen2MoeFamily.default_rope_theta, spec));
  MOED_ASSIGN_OR_RETURN(spec.attention.qkv_bias, cfg.BoolOr("qkv_bias", true));
  MOED_ASSIGN_OR_RETURN(int64_t shared, cfg.Int("shared_expert_intermediate_size"));
  if (shared < 0 || shared > config::kMaxDim) {
    return cfg.FieldError("shared_expert_intermediate_size",
                          Concat("must be in [0, ", config::kMaxDim, "], found ", shared));
  }
  if (shared > 0) spec.shared_experts = {1, static_cast<int>(shared), /*gated=*/true};
  return family::ParseSparseStep(cfg, spec);
}

absl::Status ParseQwen3(const JsonFields& cfg, std::string_view source, ModelSpec& spec) {
  MOED_RETURN_IF_ERROR(ParseCommon(cfg, source, kQwen3MoeFamily.default_rope_theta, spec));
  spec.attention.qk_norm = QkNorm::kPerHead;
  MOED_RETURN_IF_ERROR(family::RejectAttentionBias(cfg));
  return family::ParseSparseStep(cfg, spec);
}

absl::Status BindLayer(const WeightBinder& b, const ModelSpec& spec, int l, const std::string& p, LayerWeights& w) {
  MOED_RETURN_IF_ERROR(BindGqaAttention(b, spec, p, w));
  const int64_t H = spec.hidden_size;
  if (!spec.layer_is_moe[l]) {
    MOED_ASSIGN_OR_RETURN(w.dense_mlp, b.Ffn(p + "mlp.", H, spec.dense_intermediate_size));
    return absl::OkStatus();
  }
  const std::string moe = p + "mlp.";
  MOED_ASSIGN_OR_RETURN(w.router, b.Get(moe + "gate.weight", {spec.num_experts, H}));
  MOED_ASSIGN_OR_RETURN(w.experts, BindExperts(b, spec, moe, /*mixtral_names=*/false));
  if (spec.shared_experts.count > 0) {
    MOED_ASSIGN_OR_RETURN(w.shared_expert, b.Ffn(moe + "shared_expert.", H, spec.shared_experts.intermediate_size));
    MOED_ASSIGN_OR_RETURN(w.shared_expert_gate, b.Get(moe + "shared_expert_gate.weight", {1, H}));
  }
  return absl::OkStatus();
}

}  // namespace

const FamilyDef kQwen2MoeFamily = {Family::kQwen2Moe, "qwen2_moe", 1e4, 1e-6, ParseQwen2, BindLayer};
const FamilyDef kQwen3MoeFamily = {Family::kQwen3Moe, "qwen3_moe", 1e4, 1e-6, ParseQwen3, BindLayer};

}  // namespace moed
