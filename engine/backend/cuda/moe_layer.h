// One MoE block on the device: router GEMM → softmax/top-k kernel → permutation by expert (with capacity) →
// expert projections → weighted combine (+ shared expert). Two implementations (BackendOptions::cuda_moe): RunMoe,
// per-expert cuBLAS GEMMs sized on the host (the reference), and RunMoeGrouped, grouped kernels fed from the device.
#pragma once

#include <cstdint>
#include <vector>

#include <cuda_runtime.h>

#include "absl/status/status.h"
#include "engine/backend/cuda/cublas_gemm.h"
#include "engine/backend/cuda/cuda_check.h"
#include "engine/backend/cuda/cuda_weights.h"
#include "engine/backend/cuda/device_buffer.h"
#include "engine/backend/cuda/grouped_moe.h"
#include "engine/backend/cuda/side_stream.h"

namespace moed::cuda {

struct MoeShape {
  int hidden = 0;
  int num_experts = 0;
  int top_k = 0;
  int ffn = 0;              // per-expert width
  bool normalize = true;    // norm_topk_prob
  int shared_ffn = 0;       // shared expert width, 0 = none
};

// What the host learns about one call (filled by RunMoe).
struct MoeCounts {
  std::vector<int32_t> routed;  // (num_experts) assignments per expert, kept + dropped
  std::vector<int32_t> kept;    // (num_experts)
};

// Scratch buffers of the MoE path; grow-only, reused across layers and steps. One per stream.
class MoeWorkspace {
 public:
  absl::Status Reserve(const MoeShape& s, int tokens);

  DeviceBuffer logits, experts, weights, meta, row_token, assign_row, xs, gate_up, h, ys;
  DeviceBuffer shared_gate_up, shared_h, shared_out, shared_gate;
  PinnedBuffer host_meta;
  // Grouped path only: device schedule (host/moe_schedule.h) and the split-K partial sums.
  DeviceBuffer tile_prefix, active, partial;
  // Not owned; null: the shared expert runs on the compute stream. Set: QueueSharedExpert forks it onto this stream
  // (overlapping the routed experts) and JoinSharedExpert joins it back before the combine reads it.
  SideStream* side = nullptr;
  bool side_pending = false;  // forked and not yet joined
};

// Queues the shared expert of `w` on x (tokens, hidden) into ws->shared_out (and its sigmoid-gate logits into
// ws->shared_gate when the layer has a gate); sets *shared_out / *shared_gate to them, or to null when absent.
// Independent of routing: both MoE paths queue it before they wait on, or schedule from, the router. With ws->side
// it runs there, after everything queued on `stream` so far; JoinSharedExpert must follow before its outputs are read.
absl::Status QueueSharedExpert(const CublasHandle& cublas, cudaStream_t stream, const MoeShape& s,
                               const DeviceLayer& w, const bf16* x, int tokens, MoeWorkspace* ws,
                               const LaunchChecker* check, const float** shared_out, const float** shared_gate);
// Makes `stream` wait for the shared expert forked by QueueSharedExpert (a no-op when none is pending).
absl::Status JoinSharedExpert(cudaStream_t stream, MoeWorkspace* ws);

// out (tokens, hidden) fp32 = MoE(x), x (tokens, hidden) bf16 (the post-attention normalised rows).
// capacity: per-expert limit on kept assignments (≥ tokens*top_k = dropless). Synchronises the stream once (the
// per-expert row counts size the GEMMs). When `experts_out` / `weights_out` are non-null they receive the
// (tokens, top_k) expert ids and router weights.
// `check` (nullable): checks after every launch (MOED_CUDA_CHECK); errors name the operation.
absl::Status RunMoe(const CublasHandle& cublas, cudaStream_t stream, const MoeShape& s, const DeviceLayer& w,
                    const bf16* x, int tokens, int64_t capacity, float* out, MoeWorkspace* ws, MoeCounts* counts,
                    std::vector<int32_t>* experts_out, std::vector<float>* weights_out,
                    const LaunchChecker* check = nullptr);

// The grouped path's expert kernels: chosen from tokens/top_k/E (host/moe_schedule.h UseGemv: kGemv or kMma), or
// forced (tests, benches). kMma: the tensor-core tiles (grouped_gemm_tc.cu); kWmma: the older WMMA tiles, their
// reference.
enum class GroupedKernel { kAuto, kGemv, kMma, kWmma };

// Whether the grouped path takes this shape (16-byte rows: hidden and ffn multiples of 8).
bool GroupedMoeSupported(const MoeShape& s);

// Device array of layer `w`'s expert weight pointers (2E entries, owned by `table`), copied on `stream` and waited
// for (model load only).
absl::Status BuildExpertPointers(const DeviceLayer& w, int num_experts, cudaStream_t stream, DeviceBuffer* table,
                                 ExpertPointers* out);

// Device outputs of one grouped call; null → kept in the workspace only.
struct GroupedMoeOutputs {
  int32_t* counts = nullptr;   // (2E) routed per expert | kept per expert
  int32_t* experts = nullptr;  // (tokens, top_k) expert ids
  float* weights = nullptr;    // (tokens, top_k) router weights
};

// As RunMoe, without any host synchronisation (CUDA-graph capturable once the workspace is reserved for `tokens`):
// router GEMM, top-k, permutation and schedule on the device; expert projections by the grouped kernels reading
// row ranges and weight pointers (`ptrs`) from device memory; SwiGLU fused into gate_up; the weighted scatter fused
// into the down projection's split-K combine. Requires GroupedMoeSupported(s). sm_count sizes split-K.
absl::Status RunMoeGrouped(const CublasHandle& cublas, cudaStream_t stream, const MoeShape& s, const DeviceLayer& w,
                           const ExpertPointers& ptrs, const bf16* x, int tokens, int64_t capacity, float* out,
                           MoeWorkspace* ws, const GroupedMoeOutputs& outs, int sm_count,
                           GroupedKernel kernel = GroupedKernel::kAuto, const LaunchChecker* check = nullptr);

// out (tokens, hidden) fp32 = down(silu(gate(x)) · up(x)) for one dense FFN. gate_up / h are scratch of at least
// tokens*2*ffn and tokens*ffn bf16 elements.
absl::Status RunFfn(const CublasHandle& cublas, cudaStream_t stream, const DeviceFfn& f, int hidden, const bf16* x,
                    int tokens, bf16* gate_up, bf16* h, float* out, const LaunchChecker* check = nullptr);

}  // namespace moed::cuda
