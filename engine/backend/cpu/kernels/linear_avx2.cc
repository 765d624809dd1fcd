// AVX2 + FMA + F16C row-range kernels (x86-64-v3): weights widened to fp32 in registers and FMA'd against fp32 x.
// Per-function target attributes: the file builds into the baseline binary and runs only when Isa allows.
#include <immintrin.h>

#include <cstring>

#include "engine/backend/cpu/kernels/linear_kernels.h"

#if defined(__x86_64__) && defined(__GNUC__)

#define MOED_AVX2 __attribute__((target("avx2,fma,f16c")))
#define MOED_AVX2_INLINE __attribute__((target("avx2,fma,f16c"), always_inline)) inline

namespace moed::cpu::kernels {
namespace {

// 8 weights from element i of w as fp32.
template <DType D>
MOED_AVX2_INLINE __m256 Widen8(const void* w, int64_t i) {
  if constexpr (D == DType::kF32) {
    return _mm256_loadu_ps(static_cast<const float*>(w) + i);
  } else {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(w) + i));
    if constexpr (D == DType::kBF16) {
      return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    } else {
      return _mm256_cvtph_ps(h);
    }
  }
}

// The last `rem` (< 8) weights from element i, zero-padded.
template <DType D>
MOED_AVX2_INLINE __m256 Widen8Tail(const void* w, int64_t i, int64_t rem) {
  alignas(32) unsigned char buf[32] = {};
  const int size = D == DType::kF32 ? 4 : 2;
  std::memcpy(buf, static_cast<const unsigned char*>(w) + i * size, rem * size);
  return Widen8<D>(buf, 0);
}

MOED_AVX2_INLINE float Sum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// y[t·ldy + r + j] = x[t] · W[r + j] for j < R, t < T.
template <DType D, int R, int T>
MOED_AVX2 void Tile(const float* x, int64_t k, const void* w, int64_t r, float* y, int64_t ldy) {
  __m256 acc[R][T];
#pragma GCC unroll 8
  for (int j = 0; j < R; ++j) {
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) acc[j][t] = _mm256_setzero_ps();
  }
  int64_t i = 0;
  for (; i + 8 <= k; i += 8) {
    __m256 xv[T];
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) xv[t] = _mm256_loadu_ps(x + t * k + i);
#pragma GCC unroll 8
    for (int j = 0; j < R; ++j) {
      const __m256 wv = Widen8<D>(w, (r + j) * k + i);
#pragma GCC unroll 8
      for (int t = 0; t < T; ++t) acc[j][t] = _mm256_fmadd_ps(wv, xv[t], acc[j][t]);
    }
  }
  if (i < k) {
    const int64_t rem = k - i;
    __m256 xv[T];
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      alignas(32) float buf[8] = {};
      std::memcpy(buf, x + t * k + i, rem * sizeof(float));
      xv[t] = _mm256_load_ps(buf);
    }
#pragma GCC unroll 8
    for (int j = 0; j < R; ++j) {
      const __m256 wv = Widen8Tail<D>(w, (r + j) * k + i, rem);
#pragma GCC unroll 8
      for (int t = 0; t < T; ++t) acc[j][t] = _mm256_fmadd_ps(wv, xv[t], acc[j][t]);
    }
  }
#pragma GCC unroll 8
  for (int j = 0; j < R; ++j) {
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) y[t * ldy + r + j] = Sum8(acc[j][t]);
  }
}

// All n tokens against weight rows [r, r + R), four tokens per tile.
template <DType D, int R>
MOED_AVX2 void TokenGroups(const float* x, int64_t n, int64_t k, const void* w, int64_t r, float* y, int64_t ldy) {
  int64_t t = 0;
  for (; t + 4 <= n; t += 4) Tile<D, R, 4>(x + t * k, k, w, r, y + t * ldy, ldy);
  const float* xt = x + t * k;
  float* yt = y + t * ldy;
  switch (n - t) {
    case 1: Tile<D, R, 1>(xt, k, w, r, yt, ldy); break;
    case 2: Tile<D, R, 2>(xt, k, w, r, yt, ldy); break;
    case 3: Tile<D, R, 3>(xt, k, w, r, yt, ldy); break;
    default: break;
  }
}

template <DType D>
MOED_AVX2 void Rows(const float* x, int64_t n, int64_t k, const void* w, int64_t r0, int64_t r1, float* y,
                    int64_t ldy) {
  if (n == 1) {  // decode: four weight rows per pass over x
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4) Tile<D, 4, 1>(x, k, w, r, y, ldy);
    for (; r < r1; ++r) Tile<D, 1, 1>(x, k, w, r, y, ldy);
    return;
  }
  const int64_t tb = TokenBlock(k, 4);
  for (int64_t t0 = 0; t0 < n; t0 += tb) {
    const int64_t tn = n - t0 < tb ? n - t0 : tb;
    int64_t r = r0;
    for (; r + 2 <= r1; r += 2) TokenGroups<D, 2>(x + t0 * k, tn, k, w, r, y + t0 * ldy, ldy);
    for (; r < r1; ++r) TokenGroups<D, 1>(x + t0 * k, tn, k, w, r, y + t0 * ldy, ldy);
  }
}

}  // namespace

MOED_AVX2 void RowsAvx2(const float* x, int64_t n, int64_t k, const void* w, DType dt, int64_t r0, int64_t r1,
                        float* y, int64_t ldy) {
  switch (dt) {
    case DType::kBF16: Rows<DType::kBF16>(x, n, k, w, r0, r1, y, ldy); break;
    case DType::kF16: Rows<DType::kF16>(x, n, k, w, r0, r1, y, ldy); break;
    case DType::kF32: Rows<DType::kF32>(x, n, k, w, r0, r1, y, ldy); break;
  }
}

}  // namespace moed::cpu::kernels

#else

namespace moed::cpu::kernels {
void RowsAvx2(const float* x, int64_t n, int64_t k, const void* w, DType dt, int64_t r0, int64_t r1, float* y,
              int64_t ldy) {
  RowsScalar(x, n, k, w, dt, r0, r1, y, ldy);
}
}  // namespace moed::cpu::kernels

#endif
