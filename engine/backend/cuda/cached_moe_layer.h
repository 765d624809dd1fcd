// The hot-expert cache on the CUDA backend's grouped MoE path: routed experts live in the host tier
// (host/expert_host_tier.h) and a device pool of slots (CudaExpertTransfer); each MoE layer downloads its kept counts
// (one host synchronisation), runs the shared wave planner, and launches the grouped kernels per group of resident
// experts — hits first, misses after their copies land — over the layer's one permutation, combining once at the
// end, so any split into waves gives the fully-resident path's output bit for bit. Not graph-capturable.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <cuda_runtime.h>

#include "absl/status/statusor.h"
#include "engine/backend/cuda/cuda_expert_transfer.h"
#include "engine/backend/cuda/moe_layer.h"
#include "engine/cache/expert_cache.h"
#include "engine/model/model_spec.h"

namespace moed::cuda {

// Engine thread only; one per backend, created once the KV cache is reserved (the slots take what is left).
class CachedMoe {
 public:
  struct Options {
    int num_slots = 0;             // ≥ 1 (DeviceSlotCount)
    std::string policy = "lru";    // ExpertCacheConfig::policy
    // > 0: the router logits of every layer get cache::ZipfLogitBias(layers, E, router_zipf, seed) before top-k
    // (benchmarks on synthetic weights); 0 = the model's router as it is.
    float router_zipf = 0.0f;
    uint64_t router_zipf_seed = 1;
  };
  // `tier` must outlive the CachedMoe. Pins the host tier, reserves the slot pool and the launch tables.
  static absl::StatusOr<std::unique_ptr<CachedMoe>> Create(const ModelSpec& spec, const ExpertHostTier& tier,
                                                           const Options& options, cudaStream_t stream);

  cache::ExpertCache& cache() { return *cache_; }
  int num_slots() const { return transfer_->num_slots(); }

  // As RunMoeGrouped (moe_layer.h) for MoE layer `l`, whose routed experts come from the cache (w's expert pointers
  // are unused and may be null). Synchronises `stream` once, after the permutation, to read the kept counts.
  // Waits for no copy on the host: the compute stream waits on each slot's event. outs.counts is required.
  absl::Status RunLayer(const CublasHandle& cublas, cudaStream_t stream, const MoeShape& s, int l,
                        const DeviceLayer& w, const bf16* x, int tokens, int64_t capacity, float* out,
                        MoeWorkspace* ws, const GroupedMoeOutputs& outs, int sm_count, const LaunchChecker* check);

  // Prefetch for MoE layer `l` from x (tokens, H) bf16 — the hidden state after layer l-1 normalised with layer l's
  // post-attention norm: layer l's router (+ bias) and top-k on `stream` into the workspace, the ids downloaded
  // (one synchronisation), then cache::PrefetchExperts in vote order. The copies run on the copy stream while the
  // caller queues layer l's attention. Returns the loads issued.
  absl::StatusOr<int> Prefetch(const CublasHandle& cublas, cudaStream_t stream, const MoeShape& s, int l,
                               const DeviceLayer& w, const bf16* x, int tokens, MoeWorkspace* ws,
                               const LaunchChecker* check);

 private:
  CachedMoe() = default;
  absl::Status Route(const CublasHandle& cublas, cudaStream_t stream, const MoeShape& s, int l, const DeviceLayer& w,
                     const bf16* x, int tokens, float* logits, int32_t* experts, float* weights,
                     const LaunchChecker& c);

  std::unique_ptr<CudaExpertTransfer> transfer_;
  std::unique_ptr<cache::ExpertCache> cache_;
  int num_experts_ = 0;
  int64_t record_bytes_ = 0;    // host/wave_launch.h LaunchRecordBytes
  int max_records_ = 0;         // launch groups one layer may need: hits and misses of each wave, ≤ 2E
  PinnedBuffer host_records_;   // (max_records, record_bytes) staging, one record per group of the current layer
  DeviceBuffer records_;        // (max_records, record_bytes) what the kernels read
  PinnedBuffer host_counts_;    // (2E) int32 routed | kept of the current layer
  PinnedBuffer host_ids_;       // prefetch: predicted (tokens, top_k) ids
  DeviceBuffer bias_;           // (layers, E) fp32 when router_zipf > 0
};

}  // namespace moed::cuda
