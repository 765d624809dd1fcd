// The CPU sampler's candidate order (engine/runtime/sampler.cc) as 64-bit keys, shared by the CUDA sampling kernel
// and host code (a CPU unit test checks these against SampleToken). Header-only; host and device.
#pragma once

#include <cstdint>
#include <cstring>

#ifdef __CUDACC__
#define MOED_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define MOED_HOST_DEVICE inline
#endif

namespace moed::cuda {

// Best-first key: a higher key is a better candidate; logit descending, then id ascending — the CPU's BestFirst
// order. -0 and +0 compare equal as on the CPU (ties → lower id); NaN ranks below −∞ (never better than a number).
// Every key of an id < 2^32 − 1 is > 0.
MOED_HOST_DEVICE uint64_t BestFirstKey(float logit, int32_t id) {
  uint32_t b;
  if (logit == 0.0f) logit = 0.0f;  // -0 → +0
  std::memcpy(&b, &logit, sizeof b);
  uint32_t k = (b & 0x80000000u) ? ~b : (b | 0x80000000u);
  if (logit != logit) k = 0;  // NaN
  return (static_cast<uint64_t>(k) << 32) | (0xffffffffu - static_cast<uint32_t>(id));
}

// Id-order key: the CPU scans candidates in id order when it does not need them sorted (no top-k below the vocab
// and top_p = 1); a higher key comes earlier.
MOED_HOST_DEVICE uint64_t IdOrderKey(int32_t id) { return 0xffffffffu - static_cast<uint32_t>(id); }

// The id a key of either kind was made from.
MOED_HOST_DEVICE int32_t KeyId(uint64_t key) {
  return static_cast<int32_t>(0xffffffffu - static_cast<uint32_t>(key & 0xffffffffu));
}

// Whether the CPU sampler sorts candidates best-first (SampleFiltered's need_order): a top-k below the vocabulary
// or top_p < 1. Otherwise the draw scans ids in ascending order.
MOED_HOST_DEVICE bool SampleScansBestFirst(float top_p, int32_t top_k, int32_t vocab) {
  return top_p < 1.0f || (top_k > 0 && top_k < vocab);
}

// The key that orders the draw's scan: BestFirstKey when the CPU sorts, IdOrderKey when it scans ids.
MOED_HOST_DEVICE uint64_t ScanKey(float logit, int32_t id, bool best_first) {
  return best_first ? BestFirstKey(logit, id) : IdOrderKey(id);
}

}  // namespace moed::cuda
