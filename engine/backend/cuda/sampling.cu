// Sampling kernel. Candidates are ordered by unique 64-bit keys (host/sample_order.h) in exactly the CPU sampler's
// orders: best-first for top-k and top-p, and for the draw whichever order the CPU scans (best-first when it
// filters, ids ascending when it does not). Top-k, the top-p cut and the draw are each a select on a key, so no sort
// of the vocabulary is needed: by radix select (host/radix_select.h: 8 passes of 8-bit digits, fixed-point weights
// summed exactly by integer atomics) or, the reference, by bisection (64 passes, weights summed in double).
#include "engine/backend/cuda/sampling.h"
#include "engine/backend/cuda/host/radix_select.h"
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

// --- Radix select (host/radix_select.h) ---

struct RadixShared {
  unsigned long long hist[kRadixBins];
  unsigned long long above;
  unsigned long long sum;
  int digit;
};

// Σ v over the block, exact (integers); every thread gets it.
__device__ uint64_t BlockSumU64(uint64_t v, RadixShared& s) {
  __syncthreads();
  if (threadIdx.x == 0) s.sum = 0;
  __syncthreads();
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFullMask, v, o);
  if ((threadIdx.x & 31) == 0 && v != 0) atomicAdd(&s.sum, static_cast<unsigned long long>(v));
  __syncthreads();
  return s.sum;
}

// The block's radix select over the vocabulary: candidates i with member(i), keys key_of(i), weights weight_of(i)
// (computed only for candidates in the pass's bucket; kUnitWeight: every weight 1). Returns the largest key x whose
// candidates at or above it weigh ≥ threshold (at_least) or > threshold; *found = false when the total falls short.
// Lanes of one warp that share a digit add their weights once (warp match), so hot bins see few atomics.
template <bool kUnitWeight, class Member, class KeyOf, class WeightOf>
__device__ uint64_t BlockRadixSelect(int vocab, Member member, KeyOf key_of, WeightOf weight_of, uint64_t threshold,
                                     bool at_least, RadixShared& s, bool* found) {
  const int lane = threadIdx.x & 31;
  uint64_t prefix = 0, above = 0;
  for (int pass = 0; pass < kRadixPasses; ++pass) {
    const uint64_t mask = RadixHighMask(pass);
    const int shift = RadixShift(pass);
    for (int b = threadIdx.x; b < kRadixBins; b += blockDim.x) s.hist[b] = 0;
    __syncthreads();
    for (int base = 0; base < vocab; base += blockDim.x) {  // warp-uniform trip count
      const int i = base + threadIdx.x;
      bool in = false;
      int digit = 0;
      uint64_t w = 0;
      if (i < vocab && member(i)) {
        const uint64_t k = key_of(i);
        if ((k & mask) == prefix) {
          in = true;
          digit = static_cast<int>((k >> shift) & (kRadixBins - 1));
          w = kUnitWeight ? 1 : weight_of(i);
        }
      }
      const unsigned active = __ballot_sync(kFullMask, in);
      if (active == 0) continue;
      unsigned peers = 0;
      if (in) peers = __match_any_sync(active, digit);
      uint64_t sum = w;
      if (kUnitWeight) {
        sum = __popc(peers);
      } else if (__any_sync(kFullMask, __popc(peers) > 1)) {
        sum = 0;
        for (int src = 0; src < 32; ++src) {
          const uint64_t v = __shfl_sync(kFullMask, w, src);
          if ((peers >> src) & 1u) sum += v;
        }
      }
      if (in && lane == __ffs(peers) - 1 && sum != 0) {
        atomicAdd(&s.hist[digit], static_cast<unsigned long long>(sum));
      }
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      uint64_t new_above = 0;
      s.digit = RadixPickDigit(reinterpret_cast<const uint64_t*>(s.hist), above, threshold, at_least, &new_above);
      s.above = new_above;
    }
    __syncthreads();
    const int d = s.digit;
    above = s.above;
    __syncthreads();  // everyone has read s before the next pass clears it
    if (d < 0) {
      *found = false;
      return 0;
    }
    prefix |= static_cast<uint64_t>(d) << shift;
  }
  *found = true;
  return prefix;
}

// The n-th best key (1 ≤ n ≤ vocab) by radix select: as NthBestKey.
__device__ uint64_t RadixNthBestKey(const float* row, int vocab, int n, RadixShared& s) {
  bool found = false;
  return BlockRadixSelect<true>(
      vocab, [](int) { return true; }, [&](int i) { return BestFirstKey(row[i], i); }, [](int) { return 1ull; },
      static_cast<uint64_t>(n), /*at_least=*/true, s, &found);
}

// FilteredDraw with radix selects: same candidates, orders and rounding edge; masses in fixed point.
__device__ int FilteredDrawRadix(const float* row, int vocab, const DeviceSamplingParams& p, float max_logit,
                                 uint64_t best, Shared& s, RadixShared& rs) {
  const double inv_t = 1.0 / static_cast<double>(p.temperature);
  const double m = static_cast<double>(max_logit) * inv_t;
  const bool best_first = SampleScansBestFirst(p.top_p, p.top_k, vocab);
  uint64_t floor = (p.top_k > 0 && p.top_k < vocab) ? RadixNthBestKey(row, vocab, p.top_k, rs) : 0;
  auto weight = [&](int i) { return FixedWeight(Weight(row[i], inv_t, m)); };
  auto kept_total = [&](uint64_t f) {
    uint64_t t = 0;
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
      if (BestFirstKey(row[i], i) >= f) t += weight(i);
    }
    return BlockSumU64(t, rs);
  };
  uint64_t total = kept_total(floor);
  if (p.top_p < 1.0f && total > 0) {
    // The best-first prefix stops at the first candidate whose cumulative weight reaches top_p · total.
    const uint64_t target = CeilToFixed(static_cast<double>(p.top_p) * static_cast<double>(total));
    bool found = false;
    const uint64_t f = floor;
    const uint64_t cut = BlockRadixSelect<false>(
        vocab, [&](int i) { return BestFirstKey(row[i], i) >= f; }, [&](int i) { return BestFirstKey(row[i], i); },
        weight, target, /*at_least=*/true, rs, &found);
    if (found) floor = cut;
    total = kept_total(floor);
  }
  const uint64_t u = FloorToFixed(CounterUniform(p.seed, static_cast<uint64_t>(p.sample_index)) *
                                  static_cast<double>(total));
  if (total > u) {
    bool found = false;
    const uint64_t f = floor;
    const uint64_t x = BlockRadixSelect<false>(
        vocab, [&](int i) { return BestFirstKey(row[i], i) >= f; },
        [&](int i) { return ScanKey(row[i], i, best_first); }, weight, u, /*at_least=*/false, rs, &found);
    if (found) return KeyId(x);
  }
  // No weight at all (bad logits): as the CPU, the last kept candidate with weight > 0, else the first.
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

template <bool kRadix>
__global__ void __launch_bounds__(kThreads) SampleKernel(const float* logits, int vocab,
                                                         const DeviceSamplingParams* params, int max_logprobs,
                                                         int32_t* tokens, float* logprobs, int32_t* top_ids,
                                                         float* top_logprobs) {
  __shared__ Shared s;
  __shared__ RadixShared rs;
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
  if (p.temperature != 0.0f) {
    token = kRadix ? FilteredDrawRadix(row, vocab, p, max_logit, best, s, rs)
                   : FilteredDraw(row, vocab, p, max_logit, best, s);
  }
  token = min(max(token, 0), vocab - 1);  // in range whatever the logits hold
  if (threadIdx.x == 0) {
    tokens[r] = token;
    logprobs[r] = static_cast<float>(row[token] - lse);
    s_count = 0;
  }
  const int n = min(p.logprobs, min(max_logprobs, vocab));
  if (n <= 0) return;
  const uint64_t nth = kRadix ? RadixNthBestKey(row, vocab, n, rs) : NthBestKey(row, vocab, n, s);
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
                         cudaStream_t stream, SampleSelect select) {
  if (rows == 0) return cudaSuccess;
  if (vocab <= 0) return cudaErrorInvalidValue;
  if (select == SampleSelect::kRadix) {
    SampleKernel<true><<<rows, kThreads, 0, stream>>>(logits, vocab, params, max_logprobs, tokens, logprobs, top_ids,
                                                      top_logprobs);
  } else {
    SampleKernel<false><<<rows, kThreads, 0, stream>>>(logits, vocab, params, max_logprobs, tokens, logprobs,
                                                       top_ids, top_logprobs);
  }
  return cudaGetLastError();
}

}  // namespace moed::cuda
