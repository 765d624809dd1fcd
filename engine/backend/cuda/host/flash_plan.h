// Index math of flash-decoding (engine/backend/cuda/flash_decode.*), shared by its kernels and the host: how many
// splits a step uses, and which positions each split of a row takes. Header-only, host and device; unit-tested on the
// CPU (tests/unit/backend/moe_schedule_test.cc).
#pragma once

#include <algorithm>
#include <cstdint>

#ifdef __CUDACC__
#define MOED_FLASH_HD __host__ __device__ __forceinline__
#else
#define MOED_FLASH_HD inline
#endif

namespace moed::cuda {

constexpr int kFlashMaxSplits = 32;

// Splits per (row, KV head): enough CTAs for about two per SM, at most kFlashMaxSplits, known from the row count alone
// (a captured graph keeps it).
inline int FlashDecodeSplits(int rows, int num_kv_heads, int sm_count) {
  const int64_t ctas = std::max<int64_t>(1, static_cast<int64_t>(rows) * std::max(num_kv_heads, 1));
  const int64_t want = 2LL * std::max(sm_count, 1);
  return static_cast<int>(std::clamp<int64_t>((want + ctas - 1) / ctas, 1, kFlashMaxSplits));
}

// Positions [*p0, *p1) of split `sp` of `splits` over a row attending to [lo, pos]: even shares of ceil(n / splits),
// in order, covering every position once; a split past the end is empty (*p0 ≥ *p1). Split 0 is never empty.
MOED_FLASH_HD void FlashSplitRange(int lo, int pos, int splits, int sp, int* p0, int* p1) {
  const int n = pos - lo + 1, chunk = (n + splits - 1) / splits;
  *p0 = lo + sp * chunk;
  *p1 = *p0 + chunk < pos + 1 ? *p0 + chunk : pos + 1;
}

}  // namespace moed::cuda
