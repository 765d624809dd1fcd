// Weight conversion bf16/f16/f32 → fp32 with size checks against the ModelSpec.
#include "engine/backend/cpu/cpu_weights.h"

#include <algorithm>
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

absl::StatusOr<CpuFfn> ToFfn(const FfnWeights& w, int width, int hidden, const std::string& what) {
  CpuFfn ffn;
  ffn.width = width;
  const int64_t n = static_cast<int64_t>(width) * hidden;
  MOED_ASSIGN_OR_RETURN(ffn.gate, ToFloats(w.gate, n, what + ".gate"));
  MOED_ASSIGN_OR_RETURN(ffn.up, ToFloats(w.up, n, what + ".up"));
  MOED_ASSIGN_OR_RETURN(ffn.down, ToFloats(w.down, n, what + ".down"));
  return ffn;
}

absl::StatusOr<CpuLayer> ToLayer(const ModelSpec& s, const LayerWeights& w, int l) {
  const std::string p = absl::StrFormat("layers.%d.", l);
  const int64_t h = s.hidden_size, q = s.q_dim(), kv = s.kv_dim();
  CpuLayer out;
  MOED_ASSIGN_OR_RETURN(out.input_norm, ToFloats(w.input_norm, h, p + "input_norm"));
  MOED_ASSIGN_OR_RETURN(out.q_proj, ToFloats(w.q_proj, q * h, p + "q_proj"));
  MOED_ASSIGN_OR_RETURN(out.k_proj, ToFloats(w.k_proj, kv * h, p + "k_proj"));
  MOED_ASSIGN_OR_RETURN(out.v_proj, ToFloats(w.v_proj, kv * h, p + "v_proj"));
  MOED_ASSIGN_OR_RETURN(out.o_proj, ToFloats(w.o_proj, h * q, p + "o_proj"));
  if (s.qkv_bias) {
    MOED_ASSIGN_OR_RETURN(out.q_bias, ToFloats(w.q_bias, q, p + "q_bias"));
    MOED_ASSIGN_OR_RETURN(out.k_bias, ToFloats(w.k_bias, kv, p + "k_bias"));
    MOED_ASSIGN_OR_RETURN(out.v_bias, ToFloats(w.v_bias, kv, p + "v_bias"));
  }
  if (s.qk_norm == QkNorm::kPerHead) {
    MOED_ASSIGN_OR_RETURN(out.q_norm, ToFloats(w.q_norm, s.head_dim, p + "q_norm"));
    MOED_ASSIGN_OR_RETURN(out.k_norm, ToFloats(w.k_norm, s.head_dim, p + "k_norm"));
  } else if (s.qk_norm == QkNorm::kFull) {
    MOED_ASSIGN_OR_RETURN(out.q_norm, ToFloats(w.q_norm, q, p + "q_norm"));
    MOED_ASSIGN_OR_RETURN(out.k_norm, ToFloats(w.k_norm, kv, p + "k_norm"));
  }
  MOED_ASSIGN_OR_RETURN(out.post_attn_norm, ToFloats(w.post_attn_norm, h, p + "post_attn_norm"));
  out.is_moe = l < static_cast<int>(s.layer_is_moe.size()) ? s.layer_is_moe[l] : true;
  if (!out.is_moe) {
    MOED_ASSIGN_OR_RETURN(out.dense_mlp, ToFfn(w.dense_mlp, s.dense_intermediate_size, s.hidden_size,
                                               p + "mlp"));
    return out;
  }
  MOED_ASSIGN_OR_RETURN(out.router, ToFloats(w.router, static_cast<int64_t>(s.num_experts) * h, p + "router"));
  if (static_cast<int>(w.experts.size()) != s.num_experts) {
    return absl::InvalidArgumentError(absl::StrFormat("%sexperts: %d expert weight sets, expected %d", p,
                                                      w.experts.size(), s.num_experts));
  }
  for (int e = 0; e < s.num_experts; ++e) {
    MOED_ASSIGN_OR_RETURN(CpuFfn ffn, ToFfn(w.experts[e], s.moe_intermediate_size, s.hidden_size,
                                            absl::StrFormat("%sexperts.%d", p, e)));
    out.experts.push_back(std::move(ffn));
  }
  if (s.shared_expert_intermediate_size > 0) {
    MOED_ASSIGN_OR_RETURN(out.shared_expert, ToFfn(w.shared_expert, s.shared_expert_intermediate_size,
                                                   s.hidden_size, p + "shared_expert"));
    MOED_ASSIGN_OR_RETURN(out.shared_expert_gate, ToFloats(w.shared_expert_gate, h, p + "shared_expert_gate"));
  }
  return out;
}

}  // namespace

absl::StatusOr<CpuWeights> ConvertWeights(const Model& model) {
  const ModelSpec& s = model.spec;
  if (s.hidden_size <= 0 || s.num_heads <= 0 || s.num_kv_heads <= 0 || s.head_dim <= 0 || s.vocab_size <= 0 ||
      s.num_heads % s.num_kv_heads != 0 || s.head_dim % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: unusable spec (hidden %d, heads %d, kv_heads %d, head_dim %d, vocab %d)", model.source,
        s.hidden_size, s.num_heads, s.num_kv_heads, s.head_dim, s.vocab_size));
  }
  if (static_cast<int>(model.weights.layers.size()) != s.num_layers) {
    return absl::InvalidArgumentError(absl::StrFormat("%s: %d layer weight sets, spec says %d", model.source,
                                                      model.weights.layers.size(), s.num_layers));
  }
  const bool any_moe = s.layer_is_moe.empty() ||
                       std::find(s.layer_is_moe.begin(), s.layer_is_moe.end(), true) != s.layer_is_moe.end();
  if (any_moe && (s.num_experts <= 0 || s.top_k <= 0 || s.top_k > s.num_experts)) {
    return absl::InvalidArgumentError(absl::StrFormat("%s: top_k %d must be in [1, num_experts %d]", model.source,
                                                      s.top_k, s.num_experts));
  }
  const int64_t vh = static_cast<int64_t>(s.vocab_size) * s.hidden_size;
  CpuWeights out;
  MOED_ASSIGN_OR_RETURN(out.embed, ToFloats(model.weights.embed, vh, "embed_tokens"));
  for (int l = 0; l < s.num_layers; ++l) {
    MOED_ASSIGN_OR_RETURN(CpuLayer layer, ToLayer(s, model.weights.layers[l], l));
    out.layers.push_back(std::move(layer));
  }
  MOED_ASSIGN_OR_RETURN(out.final_norm, ToFloats(model.weights.final_norm, s.hidden_size, "norm"));
  const TensorView& head = model.weights.lm_head.present() ? model.weights.lm_head : model.weights.embed;
  MOED_ASSIGN_OR_RETURN(out.lm_head, ToFloats(head, vh, "lm_head"));
  return out;
}

}  // namespace moed::cpu
