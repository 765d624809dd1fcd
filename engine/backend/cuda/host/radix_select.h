// Radix select over 64-bit candidate keys (host/sample_order.h), shared by the one-pass sampling kernel and host
// code: 8 passes of 8-bit digits from the top, each a 256-bin histogram of counts or of fixed-point weights over the
// candidates that share the digits chosen so far. Finds the largest key x whose candidates at or above it carry
// mass ≥ (or >) a threshold — the n-th best key (weights 1), the top-p cut, the draw. Header-only, host and device;
// RadixSelectSerial is the kernel's loop run on one thread, unit-tested against sorting on the CPU.
#pragma once

#include <cmath>
#include <cstdint>

#ifdef __CUDACC__
#define MOED_RADIX_HD __host__ __device__ __forceinline__
#else
#define MOED_RADIX_HD inline
#endif

namespace moed::cuda {

constexpr int kRadixBits = 8;
constexpr int kRadixBins = 1 << kRadixBits;
constexpr int kRadixPasses = 64 / kRadixBits;

// Sampling weights exp(l/T − m) ∈ [0, 1] in fixed point, 2^-40 per unit: sums of a vocabulary (< 2^18) fit 64 bits,
// and integer sums are exact in any order (the kernel sums with atomics, deterministically). The CPU sums doubles;
// the two totals differ by at most vocab · 2^-41 (7e-8 at 152k), so a draw or a top-p cut differs from the CPU's
// only when its threshold falls that close to a cumulative sum.
constexpr double kRadixWeightScale = 1099511627776.0;  // 2^40
MOED_RADIX_HD uint64_t FixedWeight(double w) {
  return w > 0.0 ? static_cast<uint64_t>(w * kRadixWeightScale + 0.5) : 0;
}

// Bits of the key above the digit of pass `pass` (0 = the top byte): candidates whose key & mask equals the prefix
// chosen so far take part in the pass.
MOED_RADIX_HD uint64_t RadixHighMask(int pass) {
  return pass == 0 ? 0 : ~0ull << (64 - kRadixBits * pass);
}
MOED_RADIX_HD int RadixShift(int pass) { return 64 - kRadixBits * (pass + 1); }

// One pass's choice: the largest digit b with above + Σ_{b' ≥ b} hist[b'] meeting the threshold (≥ when at_least,
// else >); *new_above = above + Σ_{b' > b} hist[b']. −1 when no digit meets it (only possible in the first pass:
// the whole mass falls short).
MOED_RADIX_HD int RadixPickDigit(const uint64_t* hist, uint64_t above, uint64_t threshold, bool at_least,
                                 uint64_t* new_above) {
  uint64_t cum = above;
  for (int b = kRadixBins - 1; b >= 0; --b) {
    const uint64_t next = cum + hist[b];
    if (at_least ? next >= threshold : next > threshold) {
      *new_above = cum;
      return b;
    }
    cum = next;
  }
  *new_above = cum;
  return -1;
}

// Mass thresholds as integers: mass ≥ t ⇔ mass ≥ ceil(t); mass > t ⇔ mass > floor(t) (mass an integer, t ≥ 0).
MOED_RADIX_HD uint64_t CeilToFixed(double t) { return t <= 0.0 ? 0 : static_cast<uint64_t>(std::ceil(t)); }
MOED_RADIX_HD uint64_t FloorToFixed(double t) { return t <= 0.0 ? 0 : static_cast<uint64_t>(std::floor(t)); }

// The kernel's select on one thread: n candidates keys[i] (unique) with weights[i]; returns the largest key x such
// that Σ weights over keys ≥ x meets the threshold, or 0 with *found = false when even the total falls short.
// The answer is always a key of a candidate with weight > 0.
inline uint64_t RadixSelectSerial(const uint64_t* keys, const uint64_t* weights, int n, uint64_t threshold,
                                  bool at_least, bool* found) {
  uint64_t prefix = 0, above = 0, hist[kRadixBins];
  for (int pass = 0; pass < kRadixPasses; ++pass) {
    const uint64_t mask = RadixHighMask(pass);
    const int shift = RadixShift(pass);
    for (uint64_t& h : hist) h = 0;
    for (int i = 0; i < n; ++i) {
      if ((keys[i] & mask) == prefix) hist[(keys[i] >> shift) & (kRadixBins - 1)] += weights[i];
    }
    uint64_t new_above = 0;
    const int digit = RadixPickDigit(hist, above, threshold, at_least, &new_above);
    if (digit < 0) {
      *found = false;
      return 0;
    }
    prefix |= static_cast<uint64_t>(digit) << shift;
    above = new_above;
  }
  *found = true;
  return prefix;
}

}  // namespace moed::cuda
