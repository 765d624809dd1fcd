// CpuBackend: Backend on the CPU (every family; attention GQA or MLA, MLP dense or MoE) with an fp32 paged KV cache
// whose per-token layout follows the attention kind. Layers run on the fp32 reference kernels or, with
// BackendOptions::cpu_kernels "fast", on FastPath (weights in the checkpoint's dtype, SIMD) where it supports them.
#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/backend/backend.h"
#include "engine/backend/cpu/attention.h"
#include "engine/backend/cpu/cpu_weights.h"
#include "engine/backend/cpu/experts.h"
#include "engine/backend/cpu/fast_path.h"
#include "engine/cache/expert_cache.h"
#include "engine/cache/memcpy_transfer.h"
#include "engine/common/thread_pool.h"

namespace moed::cpu {

// Not thread-safe (as Backend): one caller thread; it uses its own worker pool internally.
// InitKvCache may be called again to re-allocate (the old cache contents are discarded).
// With BackendOptions::expert_cache_slots > 0 every routed-expert weight read goes through a slot of the expert
// cache (a bounded fp32 slot pool filled by memcpy from the host-tier weights); outputs are bitwise identical
// to the cache-off path.
class CpuBackend : public Backend {
 public:
  // Reference kernels: converts the weights to fp32 once. Fast kernels: keeps them in the checkpoint's dtype and
  // converts only the layers FastPath does not run. Errors name a missing or mis-sized tensor, or a bad option.
  static absl::StatusOr<std::unique_ptr<CpuBackend>> Create(std::shared_ptr<const Model> model,
                                                            const BackendOptions& options);

  std::string_view name() const override { return "cpu"; }
  // "fast", "fast-fp32" or "reference": the kernels Step runs (the fast sets may still run some layers on the
  // reference: FastPath).
  std::string_view kernels() const { return fast_ != nullptr ? std::string_view(options_.cpu_kernels) : "reference"; }
  const ModelSpec& spec() const override { return model_->spec; }
  int64_t KvBytesPerBlock(int block_size) const override;
  absl::Status InitKvCache(const KvCacheConfig& config) override;
  absl::Status Step(const StepBatch& batch, StepOutput* out) override;

 private:
  CpuBackend(std::shared_ptr<const Model> model, CpuWeights weights, const BackendOptions& options);

  // Builds the slot pool and cache when options_.expert_cache_slots > 0 (clamped to the routed experts).
  absl::Status InitExpertCache();
  absl::Status ValidateBatch(const StepBatch& batch) const;
  // Runs layer `l` on x (rows, hidden) in place; adds routing counts to out and, when the layer is MoE, sets
  // row_experts / row_weights (rows, top_k) to the router's choices and weights (left empty for a dense layer).
  absl::Status RunLayer(int l, const std::vector<QueryRow>& rows, std::vector<float>& x, StepOutput* out,
                        std::vector<int32_t>& row_experts, std::vector<float>& row_weights);
  // GQA attention of layer l: out (rows, num_heads * head_dim) from h (rows, hidden), K/V into the cache.
  void RunGqaAttention(int l, const std::vector<QueryRow>& rows, const float* h, float* out);
  // x += MoE(h) (or the dense MLP) for layer l; h (rows, hidden) is the post-attention-normed input.
  absl::Status RunMlp(int l, int64_t rows, const float* h, float* x, StepOutput* out,
                      std::vector<int32_t>& row_experts, std::vector<float>& row_weights);
  // The routed experts of MoE layer l through the expert cache; same contract as RunRoutedExperts.
  absl::Status RunCachedExperts(int l, int64_t rows, const float* h, const int32_t* experts, const float* weights,
                                const uint8_t* kept, float* y);
  // Predicts MoE layer l's experts from x (rows, hidden) — before l's attention — with l's post-attention norm
  // and router, and prefetches them.
  absl::Status PrefetchLayer(int l, const std::vector<float>& x, int64_t rows);
  // The weights of the layer-l expert held in cache slot `slot`.
  FfnView SlotView(int l, int slot) const;

  std::shared_ptr<const Model> model_;
  CpuWeights w_;                    // fp32; with fast_, only the layers fast_ does not run
  std::unique_ptr<FastPath> fast_;  // null = reference kernels
  BackendOptions options_;
  ThreadPool pool_;
  std::vector<float> inv_freq_;  // (rope.dim / 2)
  KvCacheConfig kv_config_;
  // Per layer (num_blocks, block_size, attention.kv_cache_width()): GQA K then V of each token; MLA latent + rope key.
  std::vector<std::vector<float>> kv_cache_;
  // Expert cache (null when off). cache_ refers to slot_pool_, declared first so it is destroyed last.
  std::unique_ptr<cache::MemcpyTransfer> slot_pool_;
  std::unique_ptr<cache::ExpertCache> cache_;
};

}  // namespace moed::cpu
