// WeightBinder: looks checkpoint tensors up by hub name and checks their shapes; plus the bindings several families
// share (GQA attention under self_attn.*, SwiGLU FFNs, per-expert or fused expert tensors). Internal to engine/model.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/model/checkpoint.h"
#include "engine/model/model.h"

namespace moed {

class WeightBinder {
 public:
  using Shape = std::vector<int64_t>;
  // Borrows both; copies of misaligned tensors go to `storage`.
  WeightBinder(const Checkpoint& ckpt, std::vector<std::shared_ptr<const void>>& storage)
      : ckpt_(ckpt), storage_(storage) {}

  bool Has(const std::string& name) const { return ckpt_.Find(name).has_value(); }
  // NOT_FOUND naming the tensor and its expected shape, or INVALID_ARGUMENT naming expected vs found.
  absl::StatusOr<TensorView> Get(const std::string& name, const Shape& shape) const;
  // `gate`, `up` and `down` projections of one SwiGLU FFN of width `ffn`.
  absl::StatusOr<FfnWeights> Ffn(const std::string& gate, const std::string& up, const std::string& down,
                                 int64_t hidden, int64_t ffn) const;
  // <p>gate_proj.weight, <p>up_proj.weight, <p>down_proj.weight.
  absl::StatusOr<FfnWeights> Ffn(const std::string& p, int64_t hidden, int64_t ffn) const {
    return Ffn(p + "gate_proj.weight", p + "up_proj.weight", p + "down_proj.weight", hidden, ffn);
  }

 private:
  const Checkpoint& ckpt_;
  std::vector<std::shared_ptr<const void>>& storage_;
};

// <p>input_layernorm.weight and <p>post_attention_layernorm.weight.
absl::Status BindLayerNorms(const WeightBinder& b, const ModelSpec& spec, const std::string& p, LayerWeights& w);

// GQA attention under <p>self_attn.: q/k/v/o_proj, the biases when qkv_bias, q_norm/k_norm per QkNorm.
absl::Status BindGqaAttention(const WeightBinder& b, const ModelSpec& spec, const std::string& p, LayerWeights& w);

// Routed experts of one MoE layer under prefix `moe` (e.g. "model.layers.3.mlp."). Per-expert keys
// `<moe>experts.<e>.<gate_proj|up_proj|down_proj>.weight` (or w1/w3/w2 when `mixtral_names`), or the fused
// transformers-5 layout `<moe>experts.gate_up_proj` (E, 2*ffn, hidden) with gate in the first ffn rows of each
// expert, and `<moe>experts.down_proj` (E, hidden, ffn).
absl::StatusOr<std::vector<FfnWeights>> BindExperts(const WeightBinder& b, const ModelSpec& spec,
                                                    const std::string& moe, bool mixtral_names);

}  // namespace moed
