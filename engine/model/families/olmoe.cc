// OLMoE: GQA with q/k RMSNorm over the whole projection, softmax top-k (renormalised only with norm_topk_prob).
#include "engine/common/status_macros.h"
#include "engine/common/str_cat.h"
#include "engine/model/config_fields.h"
#include "engine/model/families/family.h"

namespace moed {
namespace {

absl::Status Parse(const JsonFields& cfg, std::string_view source, ModelSpec& spec) {
  MOED_RETURN_IF_ERROR(family::ParseGqaAttention(cfg, source, kOlmoeFamily.default_rope_theta, spec));
  spec.attention.qk_norm = QkNorm::kFull;
  MOED_RETURN_IF_ERROR(family::RejectAttentionBias(cfg));
  if (cfg.Has("clip_qkv")) {
    return cfg.FieldError("clip_qkv", Concat("is ", JsonPreview(*cfg.Find("clip_qkv")),
                                             ": clipping q/k/v is not supported"),
                          absl::StatusCode::kUnimplemented);
  }
  MOED_RETURN_IF_ERROR(family::ParseExperts(cfg, "num_experts", {"num_local_experts", "num_experts"}, spec));
  MOED_ASSIGN_OR_RETURN(spec.router.norm_topk_prob, cfg.BoolOr("norm_topk_prob", false));
  MOED_ASSIGN_OR_RETURN(spec.moe_intermediate_size, config::PositiveInt(cfg, "intermediate_size"));
  spec.layer_is_moe.assign(spec.num_layers, true);
  return absl::OkStatus();
}

absl::Status BindLayer(const WeightBinder& b, const ModelSpec& spec, int, const std::string& p, LayerWeights& w) {
  MOED_RETURN_IF_ERROR(BindGqaAttention(b, spec, p, w));
  MOED_ASSIGN_OR_RETURN(w.router, b.Get(p + "mlp.gate.weight", {spec.num_experts, spec.hidden_size}));
  MOED_ASSIGN_OR_RETURN(w.experts, BindExperts(b, spec, p + "mlp.", /*mixtral_names=*/false));
  return absl::OkStatus();
}

}  // namespace

const FamilyDef kOlmoeFamily = {Family::kOlmoe, "olmoe", 1e4, 1e-5, Parse, BindLayer};

}  // namespace moed
