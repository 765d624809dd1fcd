// The one weights structure of a model, templated on how a tensor is held: TensorView (checkpoint bytes), fp32
// vectors (CPU backend) or device pointers (CUDA backend). ForEachLayerWeight walks it with the shapes a spec needs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/common/status_macros.h"
#include "engine/model/model_spec.h"

namespace moed {

// One SwiGLU FFN: down(silu(gate(x)) * up(x)). Mixtral: w1 = gate, w3 = up, w2 = down.
template <class T>
struct FfnOf {
  T gate{};         // (width, hidden)
  T up{};           // (width, hidden)
  T down{};         // (hidden, width)
  int width = 0;  // intermediate size; 0 = absent
};

// Shapes in terms of the spec: hidden = hidden_size, E = num_experts, a = spec.attention (q_dim, kv_dim, o_dim, …).
template <class T>
struct LayerOf {
  T input_norm{};      // (hidden)
  // GQA attention.
  T q_proj{};          // (a.q_dim, hidden) — also MLA when q_lora_rank == 0
  T k_proj{};          // (a.kv_dim, hidden)
  T v_proj{};          // (a.kv_dim, hidden)
  T q_bias{}, k_bias{}, v_bias{};  // (a.q_dim) / (a.kv_dim) — qwen2_moe only
  T q_norm{}, k_norm{};  // QkNorm::kPerHead: (head_dim); kFull: (a.q_dim) / (a.kv_dim)
  // MLA attention.
  T q_a_proj{};        // (q_lora_rank, hidden)
  T q_a_norm{};        // (q_lora_rank)
  T q_b_proj{};        // (a.q_dim, q_lora_rank)
  T kv_a_proj{};       // (kv_lora_rank + rope.dim, hidden): the latent, then the shared rope key
  T kv_a_norm{};       // (kv_lora_rank)
  T kv_b_proj{};       // (heads * (nope_dim + v_head_dim), kv_lora_rank): per head k_nope rows, then v rows
  T o_proj{};          // (hidden, a.o_dim)
  T post_attn_norm{};  // (hidden)

  // MoE layers (spec.layer_is_moe[l]):
  T router{};                          // (E, hidden)
  T router_bias{};                     // (E) selection bias (DeepSeek-V3 e_score_correction_bias), when router.selection_bias
  std::vector<FfnOf<T>> experts;     // E entries of width moe_intermediate_size
  FfnOf<T> shared_expert{};            // width shared_experts.intermediate_size; absent when shared_experts.count == 0
  T shared_expert_gate{};              // (1, hidden) when shared_experts.gated
  // Dense layers (not layer_is_moe[l]): one FFN of width dense_intermediate_size.
  FfnOf<T> dense_mlp{};
};

template <class T>
struct WeightsOf {
  T embed{};                          // (vocab, hidden)
  std::vector<LayerOf<T>> layers;   // num_layers
  T final_norm{};                     // (hidden)
  T lm_head{};                        // (vocab, hidden); the embedding's bytes when tie_word_embeddings
};

// What ForEachLayerWeight says about one tensor.
struct WeightSlot {
  std::string what;              // "layers.3.experts.7.gate": names the tensor in errors
  std::vector<int64_t> shape;    // the shape the spec needs
  bool follows_previous = false; // true for k/v after q and up after gate: backends may store them concatenated
};

// Calls fn(const A& src, B& dst, const WeightSlot& slot) -> absl::Status for every tensor layer `l` of `spec` needs,
// in a fixed order (q, k, v and gate, up consecutive), stopping at the first error. `out` gets the FFN widths and
// the expert count; the tensors are fn's to fill.
template <class A, class B, class Fn>
absl::Status ForEachLayerWeight(const ModelSpec& spec, int l, const LayerOf<A>& in, LayerOf<B>& out, Fn&& fn) {
  const AttentionSpec& a = spec.attention;
  const int64_t H = spec.hidden_size;
  const std::string p = absl::StrCat("layers.", l, ".");
  auto one = [&](const A& src, B& dst, const char* name, std::vector<int64_t> shape, bool follows = false) {
    return fn(src, dst, WeightSlot{p + name, std::move(shape), follows});
  };
  auto ffn = [&](const FfnOf<A>& src, FfnOf<B>& dst, const std::string& name, int64_t width) -> absl::Status {
    dst.width = static_cast<int>(width);
    MOED_RETURN_IF_ERROR(fn(src.gate, dst.gate, WeightSlot{p + name + ".gate", {width, H}, false}));
    MOED_RETURN_IF_ERROR(fn(src.up, dst.up, WeightSlot{p + name + ".up", {width, H}, true}));
    return fn(src.down, dst.down, WeightSlot{p + name + ".down", {H, width}, false});
  };
  MOED_RETURN_IF_ERROR(one(in.input_norm, out.input_norm, "input_norm", {H}));
  if (a.kind == AttentionKind::kGqa) {
    const int64_t Q = a.q_dim(), KV = a.kv_dim();
    MOED_RETURN_IF_ERROR(one(in.q_proj, out.q_proj, "q_proj", {Q, H}));
    MOED_RETURN_IF_ERROR(one(in.k_proj, out.k_proj, "k_proj", {KV, H}, true));
    MOED_RETURN_IF_ERROR(one(in.v_proj, out.v_proj, "v_proj", {KV, H}, true));
  } else {
    const int64_t Q = a.q_dim(), R = a.rope.dim, C = a.kv_lora_rank;
    if (a.q_lora_rank > 0) {
      MOED_RETURN_IF_ERROR(one(in.q_a_proj, out.q_a_proj, "q_a_proj", {a.q_lora_rank, H}));
      MOED_RETURN_IF_ERROR(one(in.q_a_norm, out.q_a_norm, "q_a_norm", {a.q_lora_rank}));
      MOED_RETURN_IF_ERROR(one(in.q_b_proj, out.q_b_proj, "q_b_proj", {Q, a.q_lora_rank}));
    } else {
      MOED_RETURN_IF_ERROR(one(in.q_proj, out.q_proj, "q_proj", {Q, H}));
    }
    MOED_RETURN_IF_ERROR(one(in.kv_a_proj, out.kv_a_proj, "kv_a_proj", {C + R, H}));
    MOED_RETURN_IF_ERROR(one(in.kv_a_norm, out.kv_a_norm, "kv_a_norm", {C}));
    MOED_RETURN_IF_ERROR(one(in.kv_b_proj, out.kv_b_proj, "kv_b_proj",
                   {static_cast<int64_t>(a.num_heads) * (a.nope_dim() + a.v_head_dim), C}));
  }
  MOED_RETURN_IF_ERROR(one(in.o_proj, out.o_proj, "o_proj", {H, a.o_dim()}));
  MOED_RETURN_IF_ERROR(one(in.post_attn_norm, out.post_attn_norm, "post_attn_norm", {H}));
  if (a.qkv_bias) {
    MOED_RETURN_IF_ERROR(one(in.q_bias, out.q_bias, "q_bias", {a.q_dim()}));
    MOED_RETURN_IF_ERROR(one(in.k_bias, out.k_bias, "k_bias", {a.kv_dim()}));
    MOED_RETURN_IF_ERROR(one(in.v_bias, out.v_bias, "v_bias", {a.kv_dim()}));
  }
  if (a.qk_norm != QkNorm::kNone) {
    const bool per_head = a.qk_norm == QkNorm::kPerHead;
    MOED_RETURN_IF_ERROR(one(in.q_norm, out.q_norm, "q_norm", {per_head ? a.head_dim : a.q_dim()}));
    MOED_RETURN_IF_ERROR(one(in.k_norm, out.k_norm, "k_norm", {per_head ? a.head_dim : a.kv_dim()}));
  }
  if (!spec.layer_is_moe[l]) {
    MOED_RETURN_IF_ERROR(ffn(in.dense_mlp, out.dense_mlp, "mlp", spec.dense_intermediate_size));
    return absl::OkStatus();
  }
  const int64_t E = spec.num_experts;
  MOED_RETURN_IF_ERROR(one(in.router, out.router, "router", {E, H}));
  if (spec.router.selection_bias) MOED_RETURN_IF_ERROR(one(in.router_bias, out.router_bias, "router_bias", {E}));
  if (static_cast<int64_t>(in.experts.size()) != E) {
    return absl::InvalidArgumentError(
        absl::StrCat(p, "experts: ", in.experts.size(), " expert weight sets, expected ", E));
  }
  out.experts.resize(E);
  for (int64_t e = 0; e < E; ++e) {
    MOED_RETURN_IF_ERROR(ffn(in.experts[e], out.experts[e], absl::StrCat("experts.", e), spec.moe_intermediate_size));
  }
  if (spec.shared_experts.count > 0) {
    MOED_RETURN_IF_ERROR(ffn(in.shared_expert, out.shared_expert, "shared_expert", spec.shared_experts.intermediate_size));
    if (spec.shared_experts.gated) {
      MOED_RETURN_IF_ERROR(one(in.shared_expert_gate, out.shared_expert_gate, "shared_expert_gate", {1, H}));
    }
  }
  return absl::OkStatus();
}

}  // namespace moed
