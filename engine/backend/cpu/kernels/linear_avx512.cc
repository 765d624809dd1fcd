// AVX-512 row-range kernels: weights widened to fp32 in registers (bf16: shift, f16: vcvtph2ps) and FMA'd against
// fp32 x; and the AVX512_BF16 kernel (vdpbf16ps on bf16 x and W). Compiled with per-function target attributes, so
// the file builds into the baseline binary and runs only when Isa says the CPU has the instructions.
// GCC 12's _mm512_undefined_* (self-initialised on purpose) trips -W(maybe-)uninitialized inside its own headers.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include "engine/backend/cpu/kernels/linear_kernels.h"
#include "engine/backend/cpu/kernels/reduce_avx512.h"

#if defined(__x86_64__) && defined(__GNUC__)

#define MOED_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c")))
#define MOED_AVX512_INLINE __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c"), always_inline)) inline
#define MOED_AVX512BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c,avx512bf16")))
#define MOED_AVX512BF16_INLINE \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c,avx512bf16"), always_inline)) inline

namespace moed::cpu::kernels {
namespace {

// acc[j][t] = 0 for an R × T tile of accumulators.
template <int R, int T>
MOED_AVX512_INLINE void ZeroTile(__m512 (&acc)[R][T]) {
#pragma GCC unroll 8
  for (int j = 0; j < R; ++j) {
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) acc[j][t] = _mm512_setzero_ps();
  }
}

// y[t·ldy + r + j] = the lanes of acc[j][t] summed as _mm512_reduce_add_ps sums them, for j < R, t < T; the 4 × 4
// tile by ReduceAdd16 (16 sums at once, bitwise the same; quarter t = the 4 rows of token t).
template <int R, int T>
MOED_AVX512_INLINE void StoreTileSums(__m512 (&acc)[R][T], float* y, int64_t ldy, int64_t r) {
  if constexpr (R == 4 && T == 4) {
    const __m512 sums = ReduceAdd16(&acc[0][0]);
    _mm_storeu_ps(y + r, _mm512_extractf32x4_ps(sums, 0));
    _mm_storeu_ps(y + ldy + r, _mm512_extractf32x4_ps(sums, 1));
    _mm_storeu_ps(y + 2 * ldy + r, _mm512_extractf32x4_ps(sums, 2));
    _mm_storeu_ps(y + 3 * ldy + r, _mm512_extractf32x4_ps(sums, 3));
  } else {
#pragma GCC unroll 8
    for (int j = 0; j < R; ++j) {
#pragma GCC unroll 8
      for (int t = 0; t < T; ++t) y[t * ldy + r + j] = _mm512_reduce_add_ps(acc[j][t]);
    }
  }
}

// 16 weights from element i of w as fp32; `m` masks a tail (elements past it read as 0 and are not loaded).
template <DType D>
MOED_AVX512_INLINE __m512 Widen16(const void* w, int64_t i, __mmask16 m) {
  if constexpr (D == DType::kF32) {
    return _mm512_maskz_loadu_ps(m, static_cast<const float*>(w) + i);
  } else {
    const __m256i h = _mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(w) + i);
    if constexpr (D == DType::kBF16) {
      return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    } else {
      return _mm512_cvtph_ps(h);
    }
  }
}

// y[t·ldy + r + j] = x[t] · W[r + j] for j < R, t < T (x rows of length k, contiguous).
template <DType D, int R, int T>
MOED_AVX512 void Tile(const float* x, int64_t k, const void* w, int64_t r, float* y, int64_t ldy) {
  __m512 acc[R][T];
  ZeroTile(acc);
  for (int64_t i = 0; i < k; i += 16) {
    const __mmask16 m = k - i >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << (k - i)) - 1);
    __m512 xv[T];
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) xv[t] = _mm512_maskz_loadu_ps(m, x + t * k + i);
#pragma GCC unroll 8
    for (int j = 0; j < R; ++j) {
      const __m512 wv = Widen16<D>(w, (r + j) * k + i, m);
#pragma GCC unroll 8
      for (int t = 0; t < T; ++t) acc[j][t] = _mm512_fmadd_ps(wv, xv[t], acc[j][t]);
    }
  }
  StoreTileSums(acc, y, ldy, r);
}

// All n tokens against weight rows [r, r + R), six tokens per tile.
template <DType D, int R>
MOED_AVX512 void TokenGroups(const float* x, int64_t n, int64_t k, const void* w, int64_t r, float* y, int64_t ldy) {
  int64_t t = 0;
  for (; t + 6 <= n; t += 6) Tile<D, R, 6>(x + t * k, k, w, r, y + t * ldy, ldy);
  const float* xt = x + t * k;
  float* yt = y + t * ldy;
  switch (n - t) {
    case 1: Tile<D, R, 1>(xt, k, w, r, yt, ldy); break;
    case 2: Tile<D, R, 2>(xt, k, w, r, yt, ldy); break;
    case 3: Tile<D, R, 3>(xt, k, w, r, yt, ldy); break;
    case 4: Tile<D, R, 4>(xt, k, w, r, yt, ldy); break;
    case 5: Tile<D, R, 5>(xt, k, w, r, yt, ldy); break;
    default: break;
  }
}

// bf16 W against x in the pair-split layout (k % 32 == 0): one 64-byte load gives 32 weights; a shift widens the
// even ones, a mask the odd ones, each FMA'd against the matching half of x's block (no cross-lane shuffle).
// Every (weight row, token) product has one accumulator, fed in this fixed order per 32 elements:
//   acc += even(w[i, i+32)) · xs[i, i+16);  acc += odd(w[i, i+32)) · xs[i+16, i+32)
// and ends as reduce_add(acc). Every tile shape below shares that order exactly, so a token's result never depends
// on its batch (decode and prefill, any position in the batch).
MOED_AVX512_INLINE __m512 EvenBf16(__m512i w) { return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16)); }
MOED_AVX512_INLINE __m512 OddBf16(__m512i w) {
  return _mm512_castsi512_ps(_mm512_and_si512(w, _mm512_set1_epi32(static_cast<int>(0xffff0000u))));
}

// y[t·ldy + r + j] for j < R, t < T: xs holds T tokens of k floats each (pair-split).
template <int R, int T>
MOED_AVX512 void TileSplit(const float* xs, int64_t k, const uint16_t* w, int64_t r, float* y, int64_t ldy) {
  __m512 acc[R][T];
  ZeroTile(acc);
  for (int64_t i = 0; i < k; i += 32) {
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      __m512 xv[T];
#pragma GCC unroll 8
      for (int t = 0; t < T; ++t) xv[t] = _mm512_loadu_ps(xs + t * k + i + 16 * h);
#pragma GCC unroll 8
      for (int j = 0; j < R; ++j) {
        const __m512i raw = _mm512_loadu_si512(w + (r + j) * k + i);
        const __m512 wv = h == 0 ? EvenBf16(raw) : OddBf16(raw);
#pragma GCC unroll 8
        for (int t = 0; t < T; ++t) acc[j][t] = _mm512_fmadd_ps(wv, xv[t], acc[j][t]);
      }
    }
  }
  StoreTileSums(acc, y, ldy, r);
}

// All T tokens against weight rows [r0, r1), R rows per tile.
template <int R, int T>
MOED_AVX512 void RowGroupsSplit(const float* xs, int64_t k, const uint16_t* w, int64_t r0, int64_t r1, float* y,
                                int64_t ldy) {
  int64_t r = r0;
  for (; r + R <= r1; r += R) TileSplit<R, T>(xs, k, w, r, y, ldy);
  for (; r < r1; ++r) TileSplit<1, T>(xs, k, w, r, y, ldy);
}

// All n tokens (pair-split, n ≥ 1) against weight rows [r0, r1). Decode: one weight row at a time, so the weights
// stream as one sequential run the hardware prefetcher follows (rows side by side are several short streams: 2 or 4
// ran at half the rate, ~10 vs ~20 GB/s per CPU-second on 2816×1024); prefill: token blocks that stay in L2, four
// rows × four tokens per tile (43 GMAC per CPU-second on 512×2816×1024, against 38 for the plain-layout 4×6 tile).
MOED_AVX512 void RowsSplit(const float* xs, int64_t n, int64_t k, const uint16_t* w, int64_t r0, int64_t r1, float* y,
                           int64_t ldy) {
  switch (n) {  // a decode batch's few tokens per expert: one weight row at a time, streamed once for all of them
    case 1: RowGroupsSplit<1, 1>(xs, k, w, r0, r1, y, ldy); return;
    case 2: RowGroupsSplit<1, 2>(xs, k, w, r0, r1, y, ldy); return;
    case 3: RowGroupsSplit<1, 3>(xs, k, w, r0, r1, y, ldy); return;
    default: break;
  }
  const int64_t tb = TokenBlock(k, 4);
  for (int64_t t0 = 0; t0 < n; t0 += tb) {
    const int64_t tn = n - t0 < tb ? n - t0 : tb;
    const float* xb = xs + t0 * k;
    float* yb = y + t0 * ldy;
    int64_t t = 0;
    for (; t + 4 <= tn; t += 4) RowGroupsSplit<4, 4>(xb + t * k, k, w, r0, r1, yb + t * ldy, ldy);
    switch (tn - t) {  // the last 1–3 tokens in one pass over the rows
      case 1: RowGroupsSplit<4, 1>(xb + t * k, k, w, r0, r1, yb + t * ldy, ldy); break;
      case 2: RowGroupsSplit<4, 2>(xb + t * k, k, w, r0, r1, yb + t * ldy, ldy); break;
      case 3: RowGroupsSplit<4, 3>(xb + t * k, k, w, r0, r1, yb + t * ldy, ldy); break;
      default: break;
    }
  }
}

template <DType D>
MOED_AVX512 void Rows(const float* x, int64_t n, int64_t k, const void* w, int64_t r0, int64_t r1, float* y,
                      int64_t ldy) {
  if (n == 1) {  // decode: eight weight rows per pass over x
    int64_t r = r0;
    for (; r + 8 <= r1; r += 8) Tile<D, 8, 1>(x, k, w, r, y, ldy);
    for (; r < r1; ++r) Tile<D, 1, 1>(x, k, w, r, y, ldy);
    return;
  }
  const int64_t tb = TokenBlock(k, 6);
  for (int64_t t0 = 0; t0 < n; t0 += tb) {
    const int64_t tn = n - t0 < tb ? n - t0 : tb;
    const float* xb = x + t0 * k;
    float* yb = y + t0 * ldy;
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4) TokenGroups<D, 4>(xb, tn, k, w, r, yb, ldy);
    for (; r < r1; ++r) TokenGroups<D, 1>(xb, tn, k, w, r, yb, ldy);
  }
}

// bf16 x and W: 32 products per vdpbf16ps, fp32 sums. k even, so a 32-bit lane never straddles two rows.
// acc[j][t] += W[j] · x[t] over all k for the R consecutive weight rows at wr, 32 elements per step.
template <int R, int T>
MOED_AVX512BF16_INLINE void AccumulateBf16(const uint16_t* x, int64_t k, const uint16_t* wr, __m512 (&acc)[R][T]) {
  int64_t i = 0;
  for (; i + 32 <= k; i += 32) {  // whole 32-element chunks: plain loads (masked ones ran slower)
    __m512bh xv[T];
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) xv[t] = (__m512bh)_mm512_loadu_si512(x + t * k + i);
#pragma GCC unroll 8
    for (int j = 0; j < R; ++j) {
      const __m512bh wv = (__m512bh)_mm512_loadu_si512(wr + j * k + i);
#pragma GCC unroll 8
      for (int t = 0; t < T; ++t) acc[j][t] = _mm512_dpbf16_ps(acc[j][t], wv, xv[t]);
    }
  }
  if (i < k) {  // the tail, masked (elements past it read as 0)
    const __mmask32 m = static_cast<__mmask32>((uint64_t{1} << (k - i)) - 1);
    __m512bh xv[T];
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) xv[t] = (__m512bh)_mm512_maskz_loadu_epi16(m, x + t * k + i);
#pragma GCC unroll 8
    for (int j = 0; j < R; ++j) {
      const __m512bh wv = (__m512bh)_mm512_maskz_loadu_epi16(m, wr + j * k + i);
#pragma GCC unroll 8
      for (int t = 0; t < T; ++t) acc[j][t] = _mm512_dpbf16_ps(acc[j][t], wv, xv[t]);
    }
  }
}

// y[t·ldy + r + j] for j < R, t < T. kRowByRow: the R rows are read one after the other, one sequential stream that
// the hardware prefetcher follows (for rows read from memory: R rows side by side are R short streams, which ran at
// ~60% of the one-stream rate in decode batches); otherwise side by side, x loaded once for all R (for rows already
// in cache). Every sum is accumulated in the same order either way.
template <int R, int T, bool kRowByRow = false>
MOED_AVX512BF16 void TileBf16(const uint16_t* x, int64_t k, const uint16_t* w, int64_t r, float* y, int64_t ldy) {
  __m512 acc[R][T];
  ZeroTile(acc);
  if constexpr (kRowByRow) {
#pragma GCC unroll 8
    for (int j = 0; j < R; ++j) AccumulateBf16<1, T>(x, k, w + (r + j) * k, reinterpret_cast<__m512(&)[1][T]>(acc[j]));
  } else {
    AccumulateBf16<R, T>(x, k, w + r * k, acc);
  }
  StoreTileSums(acc, y, ldy, r);
}

// TileBf16 row by row when `first` (the pass that reads the rows from memory), else side by side.
template <int R, int T>
MOED_AVX512BF16_INLINE void TileBf16Pass(bool first, const uint16_t* x, int64_t k, const uint16_t* w, int64_t r,
                                         float* y, int64_t ldy) {
  if (first) {
    TileBf16<R, T, /*kRowByRow=*/true>(x, k, w, r, y, ldy);
  } else {
    TileBf16<R, T>(x, k, w, r, y, ldy);
  }
}

// All n tokens against weight rows [r, r + R), four tokens per tile. The first tile reads the R rows from memory,
// row by row; the later ones find them in L1.
template <int R>
MOED_AVX512BF16 void TokenGroupsBf16(const uint16_t* x, int64_t n, int64_t k, const uint16_t* w, int64_t r, float* y,
                                     int64_t ldy) {
  int64_t t = 0;
  for (; t + 4 <= n; t += 4) TileBf16Pass<R, 4>(t == 0, x + t * k, k, w, r, y + t * ldy, ldy);
  const uint16_t* xt = x + t * k;
  float* yt = y + t * ldy;
  switch (n - t) {
    case 1: TileBf16Pass<R, 1>(t == 0, xt, k, w, r, yt, ldy); break;
    case 2: TileBf16Pass<R, 2>(t == 0, xt, k, w, r, yt, ldy); break;
    case 3: TileBf16Pass<R, 3>(t == 0, xt, k, w, r, yt, ldy); break;
    default: break;
  }
}

}  // namespace

MOED_AVX512 void RowsAvx512(const float* x, const float* x_split, int64_t n, int64_t k, const void* w, DType dt,
                            int64_t r0, int64_t r1, float* y, int64_t ldy) {
  if (x_split != nullptr && dt == DType::kBF16 && k % 32 == 0) {
    RowsSplit(x_split, n, k, static_cast<const uint16_t*>(w), r0, r1, y, ldy);
    return;
  }
  switch (dt) {
    case DType::kBF16: Rows<DType::kBF16>(x, n, k, w, r0, r1, y, ldy); break;
    case DType::kF16: Rows<DType::kF16>(x, n, k, w, r0, r1, y, ldy); break;
    case DType::kF32: Rows<DType::kF32>(x, n, k, w, r0, r1, y, ldy); break;
  }
}

MOED_AVX512BF16 void RowsAvx512Bf16Dot(const uint16_t* x, int64_t n, int64_t k, const uint16_t* w, int64_t r0,
                                       int64_t r1, float* y, int64_t ldy) {
  if (n == 1) {  // decode: one weight row at a time, one sequential stream (see RowsSplit)
    for (int64_t r = r0; r < r1; ++r) TileBf16<1, 1>(x, k, w, r, y, ldy);
    return;
  }
  // bf16 x takes half the bytes: twice the tokens fit the same L2 share. Within a token block, four weight rows (in
  // L1) pass over all its tokens (in L2) before the next four, so the weights stream once per block.
  const int64_t tb = TokenBlock(k, 4) * 2;
  for (int64_t t0 = 0; t0 < n; t0 += tb) {
    const int64_t tn = n - t0 < tb ? n - t0 : tb;
    const uint16_t* xb = x + t0 * k;
    float* yb = y + t0 * ldy;
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4) TokenGroupsBf16<4>(xb, tn, k, w, r, yb, ldy);
    for (; r < r1; ++r) TokenGroupsBf16<1>(xb, tn, k, w, r, yb, ldy);
  }
}

MOED_AVX512 void SplitRowsAvx512(const float* x, int64_t n, int64_t k, float* out) {
  const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
  for (int64_t i = 0; i < n * k; i += 32) {
    const __m512 lo = _mm512_loadu_ps(x + i), hi = _mm512_loadu_ps(x + i + 16);
    _mm512_storeu_ps(out + i, _mm512_permutex2var_ps(lo, even, hi));
    _mm512_storeu_ps(out + i + 16, _mm512_permutex2var_ps(lo, odd, hi));
  }
}

MOED_AVX512BF16 void RoundToBf16Avx512(const float* x, int64_t count, uint16_t* out) {
  int64_t i = 0;
  for (; i + 32 <= count; i += 32) {
    const __m512bh b = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(x + i));
    _mm512_storeu_si512(out + i, (__m512i)b);
  }
  for (; i < count; ++i) out[i] = FloatToBf16(x[i]);
}

}  // namespace moed::cpu::kernels

#else  // not x86-64 GCC/Clang: never dispatched (DetectedIsa() is kScalar); defined so the program links.

namespace moed::cpu::kernels {
void RowsAvx512(const float* x, const float*, int64_t n, int64_t k, const void* w, DType dt, int64_t r0, int64_t r1,
                float* y, int64_t ldy) {
  RowsScalar(x, n, k, w, dt, r0, r1, y, ldy);
}
void RowsAvx512Bf16Dot(const uint16_t*, int64_t, int64_t, const uint16_t*, int64_t, int64_t, float*, int64_t) {}
void RoundToBf16Avx512(const float* x, int64_t count, uint16_t* out) {
  for (int64_t i = 0; i < count; ++i) out[i] = FloatToBf16(x[i]);
}
void SplitRowsAvx512(const float*, int64_t, int64_t, float*) {}
}  // namespace moed::cpu::kernels

#endif
