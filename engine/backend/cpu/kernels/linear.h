// Fast y = x·Wᵀ for weights kept in the checkpoint's dtype (bf16, f16 or f32): a GEMV-shaped kernel for decode
// (each weight row streamed once for all tokens) and a register-tiled GEMM for prefill, dispatched by Isa.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/backend/cpu/kernels/isa.h"
#include "engine/common/thread_pool.h"
#include "engine/model/dtype.h"

namespace moed::cpu {

// A weight matrix as the checkpoint stores it: (rows, cols) row-major — a Linear layer's (out_features,
// in_features). Non-owning: `data` points into the Model's storage (mmap'd shards or an arena).
struct WeightMatrix {
  const void* data = nullptr;
  DType dtype = DType::kBF16;
  int64_t rows = 0;
  int64_t cols = 0;
  bool present() const { return data != nullptr; }
  // The matrix of rows [r0, r0 + count).
  WeightMatrix RowSlice(int64_t r0, int64_t count) const {
    return {static_cast<const char*>(data) + r0 * cols * DTypeSize(dtype), dtype, count, cols};
  }
};

// How the products are computed.
struct KernelConfig {
  Isa isa = Isa::kScalar;  // clamped to DetectedIsa() by the kernels
  // Products with at least this many rows of x against bf16 weights use vdpbf16ps on AVX512_BF16 CPUs: x is
  // rounded to bf16 once per product (relative error ≤ 2⁻⁸ per element, fp32 accumulation). Smaller products,
  // other dtypes and lower levels keep x in fp32 and widen the weights exactly.
  // 0 = never round x; 1 = always (the routed experts under --cpu-kernels fast: Bf16ExpertKernelConfig). Both are
  // batch-invariant; a larger value is not (a row's result then depends on how many rows share its product) and is
  // for benchmarks only.
  int64_t bf16_dot_min_rows = 0;
};

// x (n, k) fp32 prepared for one product: with x_bf16 set, the bf16 dot kernel runs; with x_split set, the
// AVX-512 bf16-weight kernel reads it instead of x.
struct LinearInput {
  const float* x = nullptr;          // (n, k)
  const uint16_t* x_bf16 = nullptr;  // (n, k) bf16 rounding of x, or null
  int64_t n = 0;
  int64_t k = 0;
  const float* x_split = nullptr;    // (n, k) x in the pair-split layout (SplitIndex), or null
};

// Whether a product of n rows of x with `w` takes the bf16 dot kernel (see KernelConfig).
bool UsesBf16Dot(const KernelConfig& cfg, const WeightMatrix& w, int64_t n);

// Whether a product of n rows of x with `w` on `isa` reads x in the pair-split layout: AVX-512 with bf16 weights and
// cols a multiple of 32, at every n (so decode and prefill sum each product in the same order). One 64-byte load of
// weights then widens into the 16 even and the 16 odd elements with one shift and one mask (no cross-lane shuffle);
// x is split once per product, not per row.
bool UsesSplitInput(Isa isa, const WeightMatrix& w, int64_t n);
// Position of element i of a row in the pair-split layout: each 32-element block holds its 16 even elements,
// then its 16 odd ones.
inline int64_t SplitIndex(int64_t i) {
  const int64_t o = i & 31;
  return (i - o) + ((o & 1) != 0 ? 16 + (o >> 1) : (o >> 1));
}

// Buffers PrepareInput fills; they must outlive the LinearInput it returns.
struct InputScratch {
  std::vector<uint16_t> bf16;
  std::vector<float> split;
};

// Prepares x (n, k) for products with `w` (w.cols == k): rounds it to bf16 when the bf16 dot kernel applies (see
// KernelConfig), or splits it when UsesSplitInput. The result points into x and *scratch.
LinearInput PrepareInput(const float* x, int64_t n, int64_t k, const WeightMatrix& w, const KernelConfig& cfg,
                         InputScratch* scratch);

// Batch invariance: every output element is summed in an order fixed by (isa, w.dtype, k) alone — never by n, a
// token's position among the n, the row range or the thread split — so a row alone and inside any batch gives
// bitwise the same result (with KernelConfig::bf16_dot_min_rows == 0).
//
// y[t·ldy + r] = Σ_i x[t, i] · W[r, i] for t < in.n and r in [r0, r1). Single-threaded; callers split row ranges
// across threads (each range streams its weight rows once per token block).
void LinearRows(Isa isa, const LinearInput& in, const WeightMatrix& w, int64_t r0, int64_t r1, float* y,
                int64_t ldy);

// y (n, w.rows) = x (n, w.cols) · Wᵀ (+ bias (w.rows) when given), rows split across `pool` when the product is
// large enough. y may not alias x.
void Linear(const KernelConfig& cfg, const float* x, int64_t n, const WeightMatrix& w, const float* bias, float* y,
            ThreadPool* pool);

// Round-to-nearest-even fp32 → bf16 of `count` values.
void RoundToBf16(const float* x, int64_t count, uint16_t* out);

}  // namespace moed::cpu
