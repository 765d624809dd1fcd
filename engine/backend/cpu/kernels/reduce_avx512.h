// Internal: sixteen horizontal sums of AVX-512 accumulators at once, each bitwise equal to _mm512_reduce_add_ps.
// Include only from files compiled with per-function AVX-512 target attributes (the kernels' .cc files).
#pragma once

#include <immintrin.h>

#if defined(__x86_64__) && defined(__GNUC__)

namespace moed::cpu::kernels {

#define MOED_REDUCE_INLINE __attribute__((target("avx512f"), always_inline)) inline

// Lane 4·m + i of the result = _mm512_reduce_add_ps(a[4·i + m]), for i, m < 4.
//
// _mm512_reduce_add_ps (GCC's definition, which every fast kernel's single sums use) adds lane pairs (l, l+8), then
// (l, l+4), then (l, l+2), then (0, 1). This does the same pairings for sixteen vectors together — two shuffles and
// one add per pair of vectors per level, 15 adds in all instead of 16 × 4 plus their extracts — so each lane holds
// exactly the sum the single reduction gives (float addition is commutative, and the pairs are the same).
MOED_REDUCE_INLINE __m512 ReduceAdd16(const __m512 a[16]) {
  __m512 c[8], e[4];
  for (int p = 0; p < 8; ++p) {  // lanes 0–7: a[2p] (l, l+8); lanes 8–15: a[2p+1]
    c[p] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * p], a[2 * p + 1], 0x44),
                         _mm512_shuffle_f32x4(a[2 * p], a[2 * p + 1], 0xee));
  }
  for (int q = 0; q < 4; ++q) {  // quarter m: a[4q + m] with (l, l+4) added
    e[q] = _mm512_add_ps(_mm512_shuffle_f32x4(c[2 * q], c[2 * q + 1], 0x88),
                         _mm512_shuffle_f32x4(c[2 * q], c[2 * q + 1], 0xdd));
  }
  // Within each quarter m: (l, l+2), giving [a[m] ×2, a[4+m] ×2] in g0 and [a[8+m] ×2, a[12+m] ×2] in g1.
  const __m512 g0 = _mm512_add_ps(_mm512_shuffle_ps(e[0], e[1], 0x44), _mm512_shuffle_ps(e[0], e[1], 0xee));
  const __m512 g1 = _mm512_add_ps(_mm512_shuffle_ps(e[2], e[3], 0x44), _mm512_shuffle_ps(e[2], e[3], 0xee));
  // (0, 1): quarter m = [a[m], a[4+m], a[8+m], a[12+m]].
  return _mm512_add_ps(_mm512_shuffle_ps(g0, g1, 0x88), _mm512_shuffle_ps(g0, g1, 0xdd));
}

#undef MOED_REDUCE_INLINE

}  // namespace moed::cpu::kernels

#endif
