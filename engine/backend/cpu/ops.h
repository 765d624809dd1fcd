// fp32 op kernels of the CPU backend: matmul against row-major weights, RMSNorm, SiLU, softmax (RoPE: engine/model/rope.h).
#pragma once

#include <cstdint>

#include "engine/common/thread_pool.h"

namespace moed::cpu {

// Σ a[i]·b[i] over n contiguous floats (vectorised; fixed summation order).
float Dot(const float* a, const float* b, int64_t n);

// y (n, out) = x (n, in) · Wᵀ, W (out, in) row-major, optional bias (out). y may not alias x.
// Parallel over output rows when `pool` is given and the work is large enough.
void MatMul(const float* x, int64_t n, int64_t in, const float* w, int64_t out, const float* bias, float* y,
            ThreadPool* pool);

// In place over `rows` rows of width `dim`: x ← x · rsqrt(mean(x²) + eps) · weight (weight: (dim)).
void RmsNorm(float* x, int64_t rows, int64_t dim, const float* weight, float eps);
// out (rows, dim) = RmsNorm(x) without modifying x.
void RmsNormTo(const float* x, int64_t rows, int64_t dim, const float* weight, float eps, float* out);

// silu(g) · u elementwise over n values, into g.
void SiluMul(float* g, const float* u, int64_t n);

// Softmax in place over n values (max-subtracted, fp32).
void Softmax(float* x, int64_t n);

// y (rows, hidden) += gate_r · shared (rows, hidden): the shared expert's output mixed in, gate_r =
// sigmoid(h_r · gate_weight) when gate_weight (hidden) is given (qwen2_moe), else 1.
void AddSharedExpert(const float* h, const float* shared, const float* gate_weight, int64_t rows, int hidden,
                     float* y);

}  // namespace moed::cpu
