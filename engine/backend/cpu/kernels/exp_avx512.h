// Internal: e^x on 16 floats with AVX-512 (≤ 2 ulp from std::exp), for the kernels' .cc files that are compiled with
// per-function AVX-512 target attributes.
#pragma once

#include <immintrin.h>

#if defined(__x86_64__) && defined(__GNUC__)

namespace moed::cpu::kernels {

#define MOED_EXP_INLINE __attribute__((target("avx512f,avx512dq,fma"), always_inline)) inline

// e^x: x = k·ln2 + r with |r| ≤ ln2/2 (ln2 split in two for an exact k·ln2), e^r by its Taylor polynomial to r⁷
// (truncation ≤ 3e-9 relative), then 2^k by vscalefps (which also gives 0 and ∞ past the float range).
MOED_EXP_INLINE __m512 ExpAvx512(__m512 x) {
  x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(89.0f)), _mm512_set1_ps(-104.0f));
  const __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(0.693145751953125f), x);
  r = _mm512_fnmadd_ps(k, _mm512_set1_ps(1.42860682028622680e-06f), r);
  __m512 p = _mm512_set1_ps(1.0f / 5040);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, k);
}

#undef MOED_EXP_INLINE

}  // namespace moed::cpu::kernels

#endif
