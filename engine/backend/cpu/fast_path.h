// FastPath: the CPU backend's fast layers (--cpu-kernels fast): weights read in the checkpoint's dtype straight
// from the Model (no fp32 copy), SIMD kernels chosen by Isa at run time; held to the fp32 reference by the tests.
#pragma once

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/backend/backend.h"
#include "engine/backend/cpu/attention.h"
#include "engine/backend/cpu/fast_experts.h"
#include "engine/backend/cpu/kernels/linear.h"
#include "engine/common/thread_pool.h"
#include "engine/model/model.h"
#include "engine/model/weights.h"

namespace moed::cpu {

// The fast path's kernels on this CPU: ActiveIsa(), x kept in fp32 (weights widened exactly in registers; the bf16
// dot kernel is not used). For attention, routers, shared experts and lm_head under every --cpu-kernels, and for the
// routed experts too under --cpu-kernels fast-fp32 (held to the reference within ~6e-6). The bf16 dot kernel in every
// linear moved tiny-mixtral's logits 0.044 from transformers'; in the routed experts alone, rounding only gate/up's
// input flipped a greedy token (tiny-mixtral-swa), rounding both inputs did not.
KernelConfig FastKernelConfig();
// The routed experts under --cpu-kernels fast (the default): their gate/up and down inputs rounded to bf16 at every
// batch size (as llama.cpp does; batch-invariant) and multiplied by vdpbf16ps on AVX512_BF16 CPUs (elsewhere: as
// FastKernelConfig). The routed experts hold most of an MoE's multiply-adds: a 512-token prefill of mixtral-224m
// runs ~1.5× faster. The logits move ≤ 4.6e-3 on the fixtures and 0.027 on fortune-moe (routing amplifies rounding);
// bounds in tests/golden/golden_test.cc.
KernelConfig Bf16ExpertKernelConfig();

// Immutable after Create; its methods may run on one caller thread at a time (they use the caller's pool).
// It runs GQA layers (dense or MoE MLP, every router, shared experts gated or not, q/k norms, qkv biases, sliding
// window, every RoPE type); RunsLayer(l) is false for the rest (MLA attention), which the caller runs on the fp32
// reference. Each row's result is independent of the batch it is in (see linear.h).
class FastPath {
 public:
  // Binds every tensor of the layers it runs, the embedding, final norm and lm_head (presence and element count
  // checked against the spec); converts only vectors (norms, biases, the shared-expert gate) to fp32.
  // `expert_cfg`: the routed experts' kernels (FastKernelConfig or Bf16ExpertKernelConfig); cfg: everything else.
  static absl::StatusOr<std::unique_ptr<FastPath>> Create(std::shared_ptr<const Model> model, const KernelConfig& cfg,
                                                          const KernelConfig& expert_cfg);

  const KernelConfig& config() const { return cfg_; }
  bool RunsLayer(int l) const { return layers_[l].fast; }
  // dst (hidden) = the embedding row of token `id`, as fp32.
  void Embed(int32_t id, float* dst) const;
  // Layer l (RunsLayer(l)) on x (rows, hidden) in place — CpuBackend::RunLayer's contract: routing counts into
  // out->routed / out->dropped; for MoE layers row_experts / row_weights (rows, top_k) get the router's choices and
  // weights (left empty for a dense layer). kv: layer l's cache; inv_freq: RopeInvFreq(spec.attention.rope).
  void RunLayer(int l, const std::vector<QueryRow>& rows, const KvLayerView& kv, const std::vector<float>& inv_freq,
                float capacity_factor, std::vector<float>& x, StepOutput* out, std::vector<int32_t>& row_experts,
                std::vector<float>& row_weights, ThreadPool* pool) const;
  // logits (m, vocab) = lm_head · RmsNorm(last); `last` (m, hidden) is normalised in place.
  void Logits(float* last, int64_t m, float* logits, ThreadPool* pool) const;

 private:
  using Floats = std::vector<float>;  // empty = absent
  struct Layer {
    bool fast = false;          // false: the reference runs this layer and the fields below are empty
    LayerOf<WeightMatrix> w;    // views of every tensor the spec needs (vectors as 1 × n)
    // fp32 copies of w's vectors.
    Floats input_norm, post_attn_norm, q_bias, k_bias, v_bias, q_norm, k_norm, router_bias, shared_gate;
  };

  FastPath(std::shared_ptr<const Model> model, const KernelConfig& cfg, const KernelConfig& expert_cfg)
      : model_(std::move(model)), cfg_(cfg), expert_cfg_(expert_cfg) {}
  // x += MoE(h) or the dense MLP of layer l; h (rows, hidden) post-attention-normed.
  void RunMlp(int l, int64_t rows, const float* h, float capacity_factor, float* x, StepOutput* out,
              std::vector<int32_t>& row_experts, std::vector<float>& row_weights, ThreadPool* pool) const;

  std::shared_ptr<const Model> model_;
  KernelConfig cfg_;
  KernelConfig expert_cfg_;       // the routed experts'
  WeightMatrix embed_, lm_head_;  // (vocab, hidden)
  Floats final_norm_;             // (hidden)
  std::vector<Layer> layers_;     // num_layers
};

}  // namespace moed::cpu
