// Router kernel: one warp per token, each lane holding up to kMaxExperts/32 experts. The arithmetic repeats the CPU
// router's (engine/moe/router.cc) step for step so expert ids and weights match it: max, exp(l − max) rounded to
// float, a sequential float sum in expert order, division, top-k by (probability desc, id asc), a sequential sum of
// the kept weights.
#include "engine/backend/cuda/router.h"
#include "engine/backend/cuda/kernel_utils.cuh"

namespace moed::cuda {
namespace {

constexpr int kPerLane = kMaxExperts / 32;
constexpr int kWarpsPerBlock = 4;

// exp(l − m) as a float. Through double, so the result is the correctly rounded one (as glibc's expf gives, to
// within its 0.502 ulp) rather than CUDA expf's (up to 2 ulp). l == m (including ±∞ == ±∞) → 1.
__device__ __forceinline__ float ExpShifted(float l, float m) {
  if (l == m) return 1.0f;
  return static_cast<float>(exp(static_cast<double>(l - m)));
}

__global__ void RouterTopKKernel(const float* logits, int tokens, int num_experts, int top_k, bool normalize,
                                 int32_t* experts, float* weights) {
  __shared__ float s_e[kWarpsPerBlock][kMaxExperts];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int t = blockIdx.x * kWarpsPerBlock + warp;
  if (t >= tokens) return;  // whole warps leave together: t depends on the warp only
  const float* row = logits + static_cast<int64_t>(t) * num_experts;
  float p[kPerLane];
  float m = -INFINITY;
#pragma unroll
  for (int j = 0; j < kPerLane; ++j) {
    const int e = lane + 32 * j;
    const float l = e < num_experts ? row[e] : -INFINITY;
    p[j] = l != l ? -INFINITY : l;  // a NaN logit is −∞
    m = fmaxf(m, p[j]);
  }
  m = WarpMax(m);
  // Unnormalised weights in shared memory so one lane can sum them in expert order, as the CPU does.
#pragma unroll
  for (int j = 0; j < kPerLane; ++j) {
    const int e = lane + 32 * j;
    if (e < num_experts) s_e[warp][e] = ExpShifted(p[j], m);
  }
  __syncwarp();
  float sum = 0.0f;
  if (lane == 0) {
    for (int e = 0; e < num_experts; ++e) sum += s_e[warp][e];
  }
  sum = __shfl_sync(kFullMask, sum, 0);  // ≥ 1: the max expert contributes exp(0)
#pragma unroll
  for (int j = 0; j < kPerLane; ++j) {
    const int e = lane + 32 * j;
    p[j] = e < num_experts ? s_e[warp][e] / sum : -1.0f;  // -1: no such expert
  }

  float kept_sum = 0.0f, my_w = 0.0f;
  int32_t my_e = 0;
  for (int k = 0; k < top_k; ++k) {
    // Best (prob desc, id asc) among this lane's remaining experts, then across the warp. Probabilities are ≥ 0 and
    // never NaN, so some expert always beats the initial -1 while k < top_k ≤ num_experts.
    float best = -1.0f;
    int best_e = 0;
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) {
      const int e = lane + 32 * j;
      if (p[j] > best) {  // ascending e per lane: a tie keeps the lower id
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
    best_e = min(max(best_e, 0), num_experts - 1);
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) {
      if (lane + 32 * j == best_e) p[j] = -2.0f;  // taken
    }
    kept_sum += best;  // in slot order, as the CPU
    if (lane == k) {
      my_e = best_e;
      my_w = best;
    }
    if (k >= 32 && lane == 0) {  // top_k > 32: write directly (rare)
      experts[static_cast<int64_t>(t) * top_k + k] = best_e;
      weights[static_cast<int64_t>(t) * top_k + k] = best;
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
