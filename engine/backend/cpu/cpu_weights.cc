// Weight conversion bf16/f16/f32 → fp32 with size checks against the ModelSpec (shapes from ForEachLayerWeight).
#include "engine/backend/cpu/cpu_weights.h"

#include <string>

#include "absl/strings/str_format.h"
#include "engine/common/status_macros.h"

namespace moed::cpu {
namespace {

absl::StatusOr<Floats> ToFloats(const TensorView& t, int64_t expected, const std::string& what) {
  if (!t.present()) {
    return absl::InvalidArgumentError(absl::StrFormat("weight %s (%s) is missing", what, t.name));
  }
  if (t.numel() != expected) {
    return absl::InvalidArgumentError(absl::StrFormat("weight %s (%s) has %d elements, expected %d", what, t.name,
                                                      t.numel(), expected));
  }
  Floats out(expected);
  for (int64_t i = 0; i < expected; ++i) out[i] = t.at(i);
  return out;
}

int64_t Numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

absl::Status CheckSpec(const Model& model) {
  const ModelSpec& s = model.spec;
  const AttentionSpec& a = s.attention;
  const bool gqa_ok = a.kind != AttentionKind::kGqa ||
                      (a.num_kv_heads > 0 && a.num_heads % a.num_kv_heads == 0 && a.head_dim > 0);
  if (s.hidden_size <= 0 || a.num_heads <= 0 || !gqa_ok || a.qk_head_dim <= 0 || a.v_head_dim <= 0 ||
      a.rope.dim <= 0 || a.rope.dim % 2 != 0 || a.rope.dim > a.qk_head_dim || s.vocab_size <= 0 ||
      (a.kind == AttentionKind::kMla && a.kv_lora_rank <= 0)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: unusable spec (hidden %d, heads %d, kv_heads %d, qk_head_dim %d, v_head_dim %d, rope dims %d, vocab %d)",
        model.source, s.hidden_size, a.num_heads, a.num_kv_heads, a.qk_head_dim, a.v_head_dim, a.rope.dim,
        s.vocab_size));
  }
  if (static_cast<int>(model.weights.layers.size()) != s.num_layers ||
      static_cast<int>(s.layer_is_moe.size()) != s.num_layers) {
    return absl::InvalidArgumentError(absl::StrFormat("%s: %d layer weight sets and %d layer kinds, spec says %d",
                                                      model.source, model.weights.layers.size(),
                                                      s.layer_is_moe.size(), s.num_layers));
  }
  if (s.num_routed_experts() > 0 && (s.num_experts <= 0 || s.top_k <= 0 || s.top_k > s.num_experts)) {
    return absl::InvalidArgumentError(absl::StrFormat("%s: top_k %d must be in [1, num_experts %d]", model.source,
                                                      s.top_k, s.num_experts));
  }
  const RouterSpec& r = s.router;
  if (s.num_routed_experts() > 0 && r.method != TopKMethod::kGreedy &&
      (r.num_groups <= 0 || s.num_experts % r.num_groups != 0 || r.topk_groups <= 0 || r.topk_groups > r.num_groups ||
       s.top_k > r.topk_groups * (s.num_experts / r.num_groups))) {
    return absl::InvalidArgumentError(absl::StrFormat("%s: router groups %d / kept %d do not fit %d experts, top-%d",
                                                      model.source, r.num_groups, r.topk_groups, s.num_experts,
                                                      s.top_k));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<CpuWeights> ConvertWeights(const Model& model) {
  return ConvertWeights(model, std::vector<bool>(model.spec.num_layers, true), /*ends=*/true);
}

absl::StatusOr<CpuWeights> ConvertWeights(const Model& model, const std::vector<bool>& layers, bool ends) {
  MOED_RETURN_IF_ERROR(CheckSpec(model));
  const ModelSpec& s = model.spec;
  const int64_t vh = static_cast<int64_t>(s.vocab_size) * s.hidden_size;
  CpuWeights out;
  out.layers.resize(s.num_layers);
  auto convert = [](const TensorView& src, Floats& dst, const WeightSlot& slot) -> absl::Status {
    MOED_ASSIGN_OR_RETURN(dst, ToFloats(src, Numel(slot.shape), slot.what));
    return absl::OkStatus();
  };
  for (int l = 0; l < s.num_layers; ++l) {
    if (!layers[l]) continue;
    MOED_RETURN_IF_ERROR(ForEachLayerWeight(s, l, model.weights.layers[l], out.layers[l], convert));
  }
  if (!ends) return out;
  MOED_ASSIGN_OR_RETURN(out.embed, ToFloats(model.weights.embed, vh, "embed_tokens"));
  MOED_ASSIGN_OR_RETURN(out.final_norm, ToFloats(model.weights.final_norm, s.hidden_size, "norm"));
  const TensorView& head = model.weights.lm_head.present() ? model.weights.lm_head : model.weights.embed;
  MOED_ASSIGN_OR_RETURN(out.lm_head, ToFloats(head, vh, "lm_head"));
  return out;
}

}  // namespace moed::cpu
