// SiluMul: a portable loop on std::exp and an AVX-512 loop with its own e^x (per-function target attribute).
#include "engine/backend/cpu/kernels/activation.h"

// GCC 12's _mm512_undefined_* (self-initialised on purpose) trips -W(maybe-)uninitialized inside its own headers.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "engine/backend/cpu/kernels/exp_avx512.h"

namespace moed::cpu {
namespace {

void SiluMulScalar(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

#if defined(__x86_64__) && defined(__GNUC__)

#define MOED_ACT_AVX512 __attribute__((target("avx512f,avx512dq,fma")))

MOED_ACT_AVX512 void SiluMulAvx512(const float* gate, const float* up, int64_t n, float* out) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << (n - i)) - 1);
    const __m512 g = _mm512_maskz_loadu_ps(m, gate + i);
    const __m512 e = kernels::ExpAvx512(_mm512_sub_ps(_mm512_setzero_ps(), g));
    const __m512 s = _mm512_div_ps(g, _mm512_add_ps(one, e));
    _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(s, _mm512_maskz_loadu_ps(m, up + i)));
  }
}

#endif

}  // namespace

void SiluMul(Isa isa, const float* gate, const float* up, int64_t n, float* out) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (std::min(isa, DetectedIsa()) >= Isa::kAvx512) {
    SiluMulAvx512(gate, up, n, out);
    return;
  }
#endif
  SiluMulScalar(gate, up, n, out);
}

}  // namespace moed::cpu
