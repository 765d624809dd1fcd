// Sampling kernel. Candidates are ordered by unique 64-bit keys (host/sample_order.h) in exactly the CPU sampler's
// orders: best-first for top-k and top-p, and for the draw whichever order the CPU scans (best-first when it
// filters, ids ascending when it does not). Top-k, the top-p cut and the draw are each found by bisection on a key
// with block reductions, so no sort of the vocabulary is needed. Weights are summed in double, as on the CPU.
#include "engine/backend/cuda/sampling.h"
#include "engine/backend/cuda/host/sample_order.h"
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

// Max (min when `take_min`) over the block; every thread gets it.
__device__ uint64_t BlockExtremeU(uint64_t v, bool take_min, Shared& s) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int o = 16; o > 0; o >>= 1) {
    const uint64_t other = __shfl_xor_sync(kFullMask, v, o);
    v = (take_min ? other < v : other > v) ? other : v;
  }
  __syncthreads();
  if (lane == 0) s.u[warp] = v;
  __syncthreads();
  uint64_t r = s.u[0];
  for (int w = 1; w < (blockDim.x >> 5); ++w) r = (take_min ? s.u[w] < r : s.u[w] > r) ? s.u[w] : r;
  return r;
}

// Number of tokens whose best-first key is ≥ x.
__device__ double CountAtLeast(const float* row, int vocab, uint64_t x, Shared& s) {
  double c = 0.0;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) c += BestFirstKey(row[i], i) >= x ? 1.0 : 0.0;
  return BlockSumD(c, s);
}

// The CPU sampler's weight exp(logit·inv_t − m), in double; NaN (bad logits) counts as 0.
__device__ __forceinline__ double Weight(float logit, double inv_t, double m) {
  const double w = exp(static_cast<double>(logit) * inv_t - m);
  return w > 0.0 ? w : 0.0;
}

// Σ weight over the kept candidates (best-first key ≥ floor) whose scan key is ≥ x.
__device__ double MassAtLeast(const float* row, int vocab, uint64_t x, uint64_t floor, bool best_first, double inv_t,
                              double m, Shared& s) {
  double sum = 0.0;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
    if (BestFirstKey(row[i], i) >= floor && ScanKey(row[i], i, best_first) >= x) sum += Weight(row[i], inv_t, m);
  }
  return BlockSumD(sum, s);
}

// Largest key x with CountAtLeast(x) ≥ n (the n-th best key), 1 ≤ n ≤ vocab.
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

// Largest scan key x with MassAtLeast(x) > threshold (≥ when `at_least`), searching x ≥ lo; lo when none.
__device__ uint64_t LargestKeyWithMass(const float* row, int vocab, uint64_t lo, uint64_t floor, bool best_first,
                                       double inv_t, double m, double threshold, bool at_least, Shared& s) {
  uint64_t hi = ~0ull;
  while (lo < hi) {
    const uint64_t mid = lo + (hi - lo) / 2 + 1;
    const double mass = MassAtLeast(row, vocab, mid, floor, best_first, inv_t, m, s);
    if (at_least ? mass >= threshold : mass > threshold) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  return lo;
}

// The filtered draw of SampleFiltered (engine/runtime/sampler.cc): top-k floor, top-p cut (best-first), then the
// first candidate in the CPU's scan order whose cumulative weight exceeds u. Returns the token id.
__device__ int FilteredDraw(const float* row, int vocab, const DeviceSamplingParams& p, float max_logit,
                            uint64_t best, Shared& s) {
  const double inv_t = 1.0 / static_cast<double>(p.temperature);
  const double m = static_cast<double>(max_logit) * inv_t;
  const bool best_first = SampleScansBestFirst(p.top_p, p.top_k, vocab);
  uint64_t floor = (p.top_k > 0 && p.top_k < vocab) ? NthBestKey(row, vocab, p.top_k, s) : 0;
  double total = MassAtLeast(row, vocab, 0, floor, true, inv_t, m, s);
  if (p.top_p < 1.0f) {
    // The best-first prefix stops at the first candidate whose cumulative weight reaches top_p · total.
    const double target = static_cast<double>(p.top_p) * total;
    floor = LargestKeyWithMass(row, vocab, floor, floor, true, inv_t, m, target, /*at_least=*/true, s);
    total = MassAtLeast(row, vocab, 0, floor, true, inv_t, m, s);
  }
  const double u = CounterUniform(p.seed, static_cast<uint64_t>(p.sample_index)) * total;
  if (MassAtLeast(row, vocab, 0, floor, best_first, inv_t, m, s) > u) {
    // Scan keys step only at kept candidates with weight > 0, so the answer is such a candidate's key.
    return KeyId(LargestKeyWithMass(row, vocab, 0, floor, best_first, inv_t, m, u, /*at_least=*/false, s));
  }
  // Rounding left u at or above the last cumulative sum: the CPU takes the last kept candidate (scan order) with
  // weight > 0, and the first candidate when there is none (bad logits).
  uint64_t last = ~0ull;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
    if (BestFirstKey(row[i], i) < floor || !(Weight(row[i], inv_t, m) > 0.0)) continue;
    const uint64_t k = ScanKey(row[i], i, best_first);
    last = k < last ? k : last;
  }
  last = BlockExtremeU(last, /*take_min=*/true, s);
  if (last != ~0ull) return KeyId(last);
  return best_first ? KeyId(best) : 0;
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
    const uint64_t k = BestFirstKey(row[i], i);
    best = k > best ? k : best;
  }
  best = BlockExtremeU(best, /*take_min=*/false, s);  // a real key: every key is > 0
  const float max_logit = row[KeyId(best)];
  double z = 0.0;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) z += exp(static_cast<double>(row[i]) - max_logit);
  const double lse = max_logit + log(BlockSumD(z, s));

  int token = KeyId(best);
  if (p.temperature != 0.0f) token = FilteredDraw(row, vocab, p, max_logit, best, s);
  token = min(max(token, 0), vocab - 1);  // in range whatever the logits hold
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
    if (BestFirstKey(row[i], i) < nth) continue;
    const int slot = atomicAdd(&s_count, 1);
    if (slot >= n) continue;  // keys are unique, so exactly n qualify; kept for safety
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
