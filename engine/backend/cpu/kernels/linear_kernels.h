// Internal: the per-ISA row-range kernels behind LinearRows (one file per instruction set).
#pragma once

#include <cstdint>

#include "engine/model/dtype.h"

namespace moed::cpu::kernels {

// Rows [r0, r1) of y (n, ldy) = x (n, k) · Wᵀ, W (.., k) row-major of dtype `dt`; x fp32, fp32 accumulation.
void RowsScalar(const float* x, int64_t n, int64_t k, const void* w, DType dt, int64_t r0, int64_t r1, float* y,
                int64_t ldy);
void RowsAvx2(const float* x, int64_t n, int64_t k, const void* w, DType dt, int64_t r0, int64_t r1, float* y,
              int64_t ldy);
// x_split: x in the pair-split layout (SplitIndex) or null; used for n == 1 with bf16 weights when k % 32 == 0.
void RowsAvx512(const float* x, const float* x_split, int64_t n, int64_t k, const void* w, DType dt, int64_t r0,
                int64_t r1, float* y, int64_t ldy);
// Same with x and W both bf16 (k even), products summed in fp32 by vdpbf16ps. AVX512_BF16 only.
void RowsAvx512Bf16Dot(const uint16_t* x, int64_t n, int64_t k, const uint16_t* w, int64_t r0, int64_t r1, float* y,
                       int64_t ldy);
// Rows of x (n, k), k % 32 == 0, into the pair-split layout (SplitIndex): two permutes per 32 floats.
void SplitRowsAvx512(const float* x, int64_t n, int64_t k, float* out);
// fp32 → bf16 round-to-nearest-even with vcvtne2ps2bf16 (same results as FloatToBf16 on finite values).
void RoundToBf16Avx512(const float* x, int64_t count, uint16_t* out);

// Tokens per block: a block of x (tokens × k fp32) stays in L2 while every weight row of a range passes over it.
inline int64_t TokenBlock(int64_t k, int64_t multiple) {
  int64_t tb = (int64_t{256} << 10) / (k * 4);
  tb -= tb % multiple;
  return tb < multiple ? multiple : tb;
}

}  // namespace moed::cpu::kernels
