// Router kernel: one warp per token, each lane holding up to kMaxExperts/32 experts.
#include "engine/backend/cuda/router.h"
#include "engine/backend/cuda/kernel_utils.cuh"

namespace moed::cuda {
namespace {

constexpr int kPerLane = kMaxExperts / 32;
constexpr int kWarpsPerBlock = 4;

__global__ void RouterTopKKernel(const float* logits, int tokens, int num_experts, int top_k, bool normalize,
                                 int32_t* experts, float* weights) {
  const int lane = threadIdx.x & 31;
  const int t = blockIdx.x * kWarpsPerBlock + (threadIdx.x >> 5);
  if (t >= tokens) return;
  const float* row = logits + static_cast<int64_t>(t) * num_experts;
  float p[kPerLane];
  float m = -INFINITY;
#pragma unroll
  for (int j = 0; j < kPerLane; ++j) {
    const int e = lane + 32 * j;
    p[j] = e < num_experts ? row[e] : -INFINITY;
    m = fmaxf(m, p[j]);
  }
  m = WarpMax(m);
  float sum = 0.0f;
#pragma unroll
  for (int j = 0; j < kPerLane; ++j) {
    const int e = lane + 32 * j;
    p[j] = e < num_experts ? expf(p[j] - m) : 0.0f;
    sum += p[j];
  }
  sum = WarpSum(sum);
#pragma unroll
  for (int j = 0; j < kPerLane; ++j) p[j] = lane + 32 * j < num_experts ? p[j] / sum : -1.0f;

  float kept_sum = 0.0f, my_w = 0.0f;
  int32_t my_e = -1;
  for (int k = 0; k < top_k; ++k) {
    // Best (prob desc, id asc) among this lane's remaining experts, then across the warp.
    float best = -1.0f;
    int best_e = 0x7fffffff;
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) {
      const int e = lane + 32 * j;
      if (p[j] > best || (p[j] == best && e < best_e)) {
        best = p[j];
        best_e = e;
      }
    }
    for (int o = 16; o > 0; o >>= 1) {
      const float ob = __shfl_xor_sync(kFullMask, best, o);
      const int oe = __shfl_xor_sync(kFullMask, best_e, o);
      if (ob > best || (ob == best && oe < best_e)) {
        best = ob;
        best_e = oe;
      }
    }
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) {
      if (lane + 32 * j == best_e) p[j] = -2.0f;  // taken
    }
    kept_sum += best;
    if (lane == k) {
      my_e = best_e;
      my_w = best;
    }
    if (k >= 32) {  // top_k > 32: write directly (rare)
      if (lane == 0) {
        experts[static_cast<int64_t>(t) * top_k + k] = best_e;
        weights[static_cast<int64_t>(t) * top_k + k] = best;
      }
    }
  }
  // Lanes < min(top_k, 32) hold slots; slots ≥ 32 were written above and are renormalised by lane 0.
  if (lane < top_k) {
    experts[static_cast<int64_t>(t) * top_k + lane] = my_e;
    weights[static_cast<int64_t>(t) * top_k + lane] = normalize ? my_w / kept_sum : my_w;
  }
  if (normalize && lane == 0) {
    for (int k = 32; k < top_k; ++k) weights[static_cast<int64_t>(t) * top_k + k] /= kept_sum;
  }
}

}  // namespace

cudaError_t LaunchRouterTopK(const float* logits, int tokens, int num_experts, int top_k, bool normalize,
                             int32_t* experts, float* weights, cudaStream_t stream) {
  if (tokens == 0) return cudaSuccess;
  if (top_k < 1 || top_k > num_experts || num_experts > kMaxExperts) return cudaErrorInvalidValue;
  RouterTopKKernel<<<CeilDiv(tokens, kWarpsPerBlock), kWarpsPerBlock * 32, 0, stream>>>(
      logits, tokens, num_experts, top_k, normalize, experts, weights);
  return cudaGetLastError();
}

}  // namespace moed::cuda
