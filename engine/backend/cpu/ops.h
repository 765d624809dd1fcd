// fp32 op kernels of the CPU backend: matmul against row-major weights, RMSNorm, SiLU, softmax (RoPE: engine/model/rope.h).
#pragma once

#include <cstdint>
#include <vector>

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

// Routed experts, both kernel sets. Per expert: the flat assignment indices (token · top_k + slot) it serves, kept
// ones only, in token order. experts / kept: (num_tokens · top_k).
std::vector<std::vector<int32_t>> AssignmentsByExpert(const int32_t* experts, const uint8_t* kept, int num_tokens,
                                                      int top_k, int num_experts);
// dst (assignments.size(), hidden) = the rows of x (tokens, hidden) of the assignments' tokens.
void GatherAssignedRows(const float* x, const std::vector<int32_t>& assignments, int top_k, int64_t hidden,
                        float* dst);
// out (tokens, hidden) += routing_weights[a] · results[e] row of a, for every expert e and assignment a of
// assigned[e], experts ascending then assignments in order (a fixed summation order). results[e]:
// (assigned[e].size(), hidden).
void AddWeightedExpertOutputs(const std::vector<std::vector<int32_t>>& assigned,
                              const std::vector<std::vector<float>>& results, const float* routing_weights, int top_k,
                              int64_t hidden, float* out);

}  // namespace moed::cpu
