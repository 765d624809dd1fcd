// Permutation of token→expert assignments into expert-contiguous rows (stable counting sort with capacity),
// the row gather feeding the expert GEMMs, and the weighted un-permutation back to tokens.
#pragma once

#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace moed::cuda {

struct PermuteArgs {
  const int32_t* experts = nullptr;  // (assignments) expert id per (token, slot), token-major
  int assignments = 0;               // tokens * top_k
  int top_k = 1;
  int num_experts = 0;               // ≤ kMaxExperts (router.h)
  int64_t capacity = 0;              // per expert; assignments beyond it (in token order) are dropped
  int32_t* counts = nullptr;         // (2 * num_experts) out: [routed per expert | kept per expert]
  int32_t* offsets = nullptr;        // (num_experts + 1) out: exclusive prefix sum of the kept counts
  int32_t* row_token = nullptr;      // (assignments) out: source token of permuted row r (r < kept total)
  int32_t* assign_row = nullptr;     // (assignments) out: permuted row of each assignment, -1 when dropped
  // Optional (the grouped path, host/moe_schedule.h BuildExpertSchedule): null → not written.
  int tile_rows = 64;                // rows per tile of tile_prefix
  int32_t* tile_prefix = nullptr;    // (num_experts + 1) out: exclusive prefix sum of ceil(kept / tile_rows)
  int32_t* active = nullptr;         // (num_experts + 1) out: active expert ids ascending, -1 padded; [E] = count
};

// Single block; O(assignments). Kept rows of expert e are offsets[e] .. offsets[e+1]-1, in token order.
cudaError_t LaunchPermute(const PermuteArgs& a, cudaStream_t stream);

// dst (rows, dim) = src[index[r]] for r < rows (bf16).
cudaError_t LaunchGatherRows(const __nv_bfloat16* src, const int32_t* index, int rows, int dim, __nv_bfloat16* dst,
                             cudaStream_t stream);

// out (tokens, dim) fp32 = Σ_k weights[t,k] · expert_out[assign_row[t,k]] over kept slots
//   + (shared_out ? sigmoid(shared_gate[t]) · shared_out[t] : 0)  (shared_gate null → gate 1).
// expert_out (kept rows, dim) fp32; shared_out (tokens, dim) fp32; shared_gate (tokens) fp32 logits.
cudaError_t LaunchUnpermute(const float* expert_out, const int32_t* assign_row, const float* weights, int tokens,
                            int top_k, int dim, const float* shared_out, const float* shared_gate, float* out,
                            cudaStream_t stream);

// h (rows, ffn) bf16 = silu(gate_up[:, :ffn]) · gate_up[:, ffn:], gate_up (rows, 2*ffn) bf16.
cudaError_t LaunchSwiGlu(const __nv_bfloat16* gate_up, int64_t rows, int ffn, __nv_bfloat16* h,
                         cudaStream_t stream);

}  // namespace moed::cuda
