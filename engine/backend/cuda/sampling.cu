// Sampling kernel. Candidates are ordered by a unique 64-bit key (logit desc, then id asc), exactly the order of the
// CPU sampler; top-k, the top-p cut and the draw are each found by bisection on that key with block reductions,
// so no sort of the vocabulary is needed. Masses are summed in double, as on the CPU.
#include "engine/backend/cuda/sampling.h"
#include "engine/backend/cuda/kernel_utils.cuh"

namespace moed::cuda {
namespace {

constexpr int kThreads = 1024;

__device__ __forceinline__ uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Same as moed::CounterUniform.
__device__ __forceinline__ double CounterUniform(uint64_t seed, uint64_t index) {
  const uint64_t bits = SplitMix64(SplitMix64(seed) ^ (index * 0xd1b54a32d192ed03ull + 0x632be59bd9b4e019ull));
  return static_cast<double>(bits >> 11) * (1.0 / 9007199254740992.0);
}

// Higher key = better candidate: order-preserving float bits, then the inverted id (lower id wins ties).
__device__ __forceinline__ uint64_t Key(float logit, int id) {
  const uint32_t b = __float_as_uint(logit);
  const uint32_t k = (b & 0x80000000u) ? ~b : (b | 0x80000000u);
  return (static_cast<uint64_t>(k) << 32) | (0xffffffffu - static_cast<uint32_t>(id));
}

__device__ __forceinline__ int KeyId(uint64_t key) {
  return static_cast<int>(0xffffffffu - static_cast<uint32_t>(key & 0xffffffffu));
}

struct Shared {
  double d[32];
  unsigned long long u[32];
};

__device__ double BlockSumD(double v, Shared& s) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFullMask, v, o);
  __syncthreads();
  if (lane == 0) s.d[warp] = v;
  __syncthreads();
  double r = 0.0;
  for (int w = 0; w < (blockDim.x >> 5); ++w) r += s.d[w];
  return r;
}

__device__ uint64_t BlockMaxU(uint64_t v, Shared& s) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int o = 16; o > 0; o >>= 1) {
    const uint64_t other = __shfl_xor_sync(kFullMask, v, o);
    v = other > v ? other : v;
  }
  __syncthreads();
  if (lane == 0) s.u[warp] = v;
  __syncthreads();
  uint64_t r = 0;
  for (int w = 0; w < (blockDim.x >> 5); ++w) r = s.u[w] > r ? s.u[w] : r;
  return r;
}

// Number of tokens whose key is ≥ x.
__device__ double CountAtLeast(const float* row, int vocab, uint64_t x, Shared& s) {
  double c = 0.0;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) c += Key(row[i], i) >= x ? 1.0 : 0.0;
  return BlockSumD(c, s);
}

// Σ exp(logit·inv_t − m) over tokens with key ≥ max(x, floor).
__device__ double MassAtLeast(const float* row, int vocab, uint64_t x, uint64_t floor, double inv_t, double m,
                              Shared& s) {
  const uint64_t lo = x > floor ? x : floor;
  double sum = 0.0;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
    if (Key(row[i], i) >= lo) sum += exp(static_cast<double>(row[i]) * inv_t - m);
  }
  return BlockSumD(sum, s);
}

// Largest key x with CountAtLeast(x) ≥ n (the n-th best key), n ≥ 1.
__device__ uint64_t NthBestKey(const float* row, int vocab, int n, Shared& s) {
  uint64_t lo = 0, hi = ~0ull;
  while (lo < hi) {
    const uint64_t mid = lo + (hi - lo) / 2 + 1;
    if (CountAtLeast(row, vocab, mid, s) >= n) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  return lo;
}

__global__ void __launch_bounds__(kThreads) SampleKernel(const float* logits, int vocab,
                                                         const DeviceSamplingParams* params, int max_logprobs,
                                                         int32_t* tokens, float* logprobs, int32_t* top_ids,
                                                         float* top_logprobs) {
  __shared__ Shared s;
  __shared__ int s_count;
  const int r = blockIdx.x;
  const float* row = logits + static_cast<int64_t>(r) * vocab;
  const DeviceSamplingParams p = params[r];

  uint64_t best = 0;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
    const uint64_t k = Key(row[i], i);
    best = k > best ? k : best;
  }
  best = BlockMaxU(best, s);
  const float max_logit = row[KeyId(best)];
  double z = 0.0;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) z += exp(static_cast<double>(row[i]) - max_logit);
  const double lse = max_logit + log(BlockSumD(z, s));

  uint64_t chosen = best;
  if (p.temperature != 0.0f) {
    const double inv_t = 1.0 / static_cast<double>(p.temperature);
    const double m = static_cast<double>(max_logit) * inv_t;
    const uint64_t k_floor = (p.top_k > 0 && p.top_k < vocab) ? NthBestKey(row, vocab, p.top_k, s) : 0;
    uint64_t floor = k_floor;
    double total = MassAtLeast(row, vocab, 0, floor, inv_t, m, s);
    if (p.top_p < 1.0f) {
      // The best-first prefix stops at the first candidate whose cumulative mass reaches top_p · total.
      const double target = static_cast<double>(p.top_p) * total;
      uint64_t lo = floor, hi = ~0ull;
      while (lo < hi) {
        const uint64_t mid = lo + (hi - lo) / 2 + 1;
        if (MassAtLeast(row, vocab, mid, floor, inv_t, m, s) >= target) {
          lo = mid;
        } else {
          hi = mid - 1;
        }
      }
      floor = lo;
      total = MassAtLeast(row, vocab, 0, floor, inv_t, m, s);
    }
    const double u = CounterUniform(p.seed, static_cast<uint64_t>(p.sample_index)) * total;
    // First candidate (best-first) whose cumulative mass exceeds u = largest key x with Mass(x) > u.
    uint64_t lo = floor, hi = ~0ull;
    if (MassAtLeast(row, vocab, lo, floor, inv_t, m, s) > u) {
      while (lo < hi) {
        const uint64_t mid = lo + (hi - lo) / 2 + 1;
        if (MassAtLeast(row, vocab, mid, floor, inv_t, m, s) > u) {
          lo = mid;
        } else {
          hi = mid - 1;
        }
      }
    }
    chosen = lo;  // rounding (u ≥ total): the last kept candidate, as on the CPU
  }
  const int token = KeyId(chosen);
  if (threadIdx.x == 0) {
    tokens[r] = token;
    logprobs[r] = static_cast<float>(row[token] - lse);
    s_count = 0;
  }
  const int n = min(p.logprobs, min(max_logprobs, vocab));
  if (n <= 0) return;
  const uint64_t nth = NthBestKey(row, vocab, n, s);
  __syncthreads();
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
    if (Key(row[i], i) < nth) continue;
    const int slot = atomicAdd(&s_count, 1);
    top_ids[static_cast<int64_t>(r) * max_logprobs + slot] = i;
    top_logprobs[static_cast<int64_t>(r) * max_logprobs + slot] = static_cast<float>(row[i] - lse);
  }
}

}  // namespace

cudaError_t LaunchSample(const float* logits, int rows, int vocab, const DeviceSamplingParams* params,
                         int max_logprobs, int32_t* tokens, float* logprobs, int32_t* top_ids, float* top_logprobs,
                         cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  if (vocab <= 0) return cudaErrorInvalidValue;
  SampleKernel<<<rows, kThreads, 0, stream>>>(logits, vocab, params, max_logprobs, tokens, logprobs, top_ids,
                                              top_logprobs);
  return cudaGetLastError();
}

}  // namespace moed::cuda
