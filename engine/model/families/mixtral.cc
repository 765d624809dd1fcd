// Mixtral: GQA with an optional sliding window, softmax top-k renormalised; hub names
// block_sparse_moe.experts.N.w1/w3/w2 (or transformers 5's mlp.*).
#include <limits>

#include "engine/common/status_macros.h"
#include "engine/common/str_cat.h"
#include "engine/model/config_fields.h"
#include "engine/model/families/family.h"

namespace moed {
namespace {

absl::Status Parse(const JsonFields& cfg, std::string_view source, ModelSpec& spec) {
  MOED_RETURN_IF_ERROR(family::ParseGqaAttention(cfg, source, kMixtralFamily.default_rope_theta, spec));
  MOED_ASSIGN_OR_RETURN(int64_t window, cfg.IntOr("sliding_window", 0));
  if (window < 0 || window > std::numeric_limits<int>::max()) {
    return cfg.FieldError("sliding_window", Concat("must be null or a non-negative integer, found ", window));
  }
  spec.attention.sliding_window = static_cast<int>(window);
  MOED_RETURN_IF_ERROR(family::ParseExperts(cfg, "num_local_experts", {"num_local_experts", "num_experts"}, spec));
  spec.router.norm_topk_prob = true;
  MOED_ASSIGN_OR_RETURN(spec.moe_intermediate_size, config::PositiveInt(cfg, "intermediate_size"));
  spec.layer_is_moe.assign(spec.num_layers, true);
  return absl::OkStatus();
}

absl::Status BindLayer(const WeightBinder& b, const ModelSpec& spec, int, const std::string& p, LayerWeights& w) {
  MOED_RETURN_IF_ERROR(BindGqaAttention(b, spec, p, w));
  // Hub checkpoints use block_sparse_moe.* with w1/w3/w2; transformers 5 may write mlp.* with the qwen names.
  const bool hub_names = !b.Has(p + "mlp.gate.weight");
  const std::string moe = hub_names ? p + "block_sparse_moe." : p + "mlp.";
  MOED_ASSIGN_OR_RETURN(w.router, b.Get(moe + "gate.weight", {spec.num_experts, spec.hidden_size}));
  MOED_ASSIGN_OR_RETURN(w.experts, BindExperts(b, spec, moe, hub_names));
  return absl::OkStatus();
}

}  // namespace

const FamilyDef kMixtralFamily = {Family::kMixtral, "mixtral", 1e6, 1e-5, Parse, BindLayer};

}  // namespace moed
