// fp32 op kernels: written so GCC vectorises the inner loops at -O3 (independent accumulator lanes).
#include "engine/backend/cpu/ops.h"

#include <algorithm>
#include <cmath>

namespace moed::cpu {
namespace {

// Dispatch an AVX clone at load time on x86-64 (the baseline build is SSE2 only).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MOED_VECTOR_CLONES __attribute__((target_clones("avx", "default")))
#else
#define MOED_VECTOR_CLONES
#endif

// Every dot product — one row alone or inside any batch — is summed the same way: kLanes interleaved partial sums
// (vector lanes), reduced left to right, then the tail. So a row's result never depends on the batch it is in
// (batch invariance: prefix caching on or off composes batches differently and must give identical logits). The
// two-token kernel keeps the 16 lanes too (a two-token kernel with 8 lanes made rows differ by up to 6.7e-6 between
// batches; with 16 it spills some accumulators and runs ~15 % slower on prefill, measured per CPU-second).
constexpr int kLanes = 16;

// Four dot products of x against rows w0..w3 at once: x is read once per four weight rows.
MOED_VECTOR_CLONES
void Dot4(const float* x, const float* w0, const float* w1, const float* w2, const float* w3, int64_t n,
          float* out) {
  float a0[kLanes] = {}, a1[kLanes] = {}, a2[kLanes] = {}, a3[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
      const float xv = x[i + l];
      a0[l] += xv * w0[i + l];
      a1[l] += xv * w1[i + l];
      a2[l] += xv * w2[i + l];
      a3[l] += xv * w3[i + l];
    }
  }
  float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  for (int l = 0; l < kLanes; ++l) {
    s0 += a0[l];
    s1 += a1[l];
    s2 += a2[l];
    s3 += a3[l];
  }
  for (; i < n; ++i) {
    s0 += x[i] * w0[i];
    s1 += x[i] * w1[i];
    s2 += x[i] * w2[i];
    s3 += x[i] * w3[i];
  }
  out[0] = s0;
  out[1] = s1;
  out[2] = s2;
  out[3] = s3;
}

// Dot4 for two input rows x0, x1 at once: each loaded weight vector serves both. Each of the eight sums follows
// DotImpl's order exactly (same lanes, same reduction), so results equal the one-row kernels'.
MOED_VECTOR_CLONES
void Dot4x2(const float* x0, const float* x1, const float* w0, const float* w1, const float* w2, const float* w3,
            int64_t n, float* out0, float* out1) {
  float a0[kLanes] = {}, a1[kLanes] = {}, a2[kLanes] = {}, a3[kLanes] = {};
  float b0[kLanes] = {}, b1[kLanes] = {}, b2[kLanes] = {}, b3[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
      const float xa = x0[i + l], xb = x1[i + l];
      const float v0 = w0[i + l], v1 = w1[i + l], v2 = w2[i + l], v3 = w3[i + l];
      a0[l] += xa * v0;
      a1[l] += xa * v1;
      a2[l] += xa * v2;
      a3[l] += xa * v3;
      b0[l] += xb * v0;
      b1[l] += xb * v1;
      b2[l] += xb * v2;
      b3[l] += xb * v3;
    }
  }
  float s[8] = {};
  for (int l = 0; l < kLanes; ++l) {
    s[0] += a0[l];
    s[1] += a1[l];
    s[2] += a2[l];
    s[3] += a3[l];
    s[4] += b0[l];
    s[5] += b1[l];
    s[6] += b2[l];
    s[7] += b3[l];
  }
  for (; i < n; ++i) {
    s[0] += x0[i] * w0[i];
    s[1] += x0[i] * w1[i];
    s[2] += x0[i] * w2[i];
    s[3] += x0[i] * w3[i];
    s[4] += x1[i] * w0[i];
    s[5] += x1[i] * w1[i];
    s[6] += x1[i] * w2[i];
    s[7] += x1[i] * w3[i];
  }
  for (int k = 0; k < 4; ++k) {
    out0[k] = s[k];
    out1[k] = s[4 + k];
  }
}

MOED_VECTOR_CLONES
float DotImpl(const float* a, const float* b, int64_t n) {
  float acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) acc[l] += a[i + l] * b[i + l];
  }
  float s = 0;
  for (int l = 0; l < kLanes; ++l) s += acc[l];
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

// Output rows [o_begin, o_end) for all n tokens, in tiles of weight rows so a tile stays in cache.
void MatMulRows(const float* x, int64_t n, int64_t in, const float* w, int64_t out, const float* bias, float* y,
                int64_t o_begin, int64_t o_end) {
  constexpr int64_t kTile = 32;
  for (int64_t ob = o_begin; ob < o_end; ob += kTile) {
    const int64_t oe = std::min(o_end, ob + kTile);
    int64_t t = 0;
    for (; t + 2 <= n; t += 2) {  // token pairs share the weight loads
      const float* x0 = x + t * in;
      const float* x1 = x0 + in;
      float* y0 = y + t * out;
      float* y1 = y0 + out;
      int64_t o = ob;
      for (; o + 4 <= oe; o += 4) {
        Dot4x2(x0, x1, w + o * in, w + (o + 1) * in, w + (o + 2) * in, w + (o + 3) * in, in, y0 + o, y1 + o);
      }
      for (; o < oe; ++o) {
        y0[o] = DotImpl(x0, w + o * in, in);
        y1[o] = DotImpl(x1, w + o * in, in);
      }
    }
    for (; t < n; ++t) {
      const float* xt = x + t * in;
      float* yt = y + t * out;
      int64_t o = ob;
      for (; o + 4 <= oe; o += 4) {
        Dot4(xt, w + o * in, w + (o + 1) * in, w + (o + 2) * in, w + (o + 3) * in, in, yt + o);
      }
      for (; o < oe; ++o) yt[o] = DotImpl(xt, w + o * in, in);
    }
    if (bias != nullptr) {
      for (int64_t tt = 0; tt < n; ++tt) {
        for (int64_t j = ob; j < oe; ++j) y[tt * out + j] += bias[j];
      }
    }
  }
}

}  // namespace

float Dot(const float* a, const float* b, int64_t n) { return DotImpl(a, b, n); }

void MatMul(const float* x, int64_t n, int64_t in, const float* w, int64_t out, const float* bias, float* y,
            ThreadPool* pool) {
  // Below ~64K multiply-adds a thread hand-off costs more than it saves.
  constexpr int64_t kMinParallelWork = 1 << 16;
  if (pool == nullptr || pool->size() == 1 || n * in * out < kMinParallelWork) {
    MatMulRows(x, n, in, w, out, bias, y, 0, out);
    return;
  }
  // Split on multiples of 4 rows so every range keeps the 4-row kernel.
  const int64_t groups = (out + 3) / 4;
  pool->ParallelFor(groups, [&](int64_t gb, int64_t ge) {
    MatMulRows(x, n, in, w, out, bias, y, gb * 4, std::min(out, ge * 4));
  });
}

void RmsNormTo(const float* x, int64_t rows, int64_t dim, const float* weight, float eps, float* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * dim;
    float* orow = out + r * dim;
    const float mean_sq = DotImpl(xr, xr, dim) / static_cast<float>(dim);
    const float inv = 1.0f / std::sqrt(mean_sq + eps);
    for (int64_t i = 0; i < dim; ++i) orow[i] = weight[i] * (xr[i] * inv);
  }
}

void RmsNorm(float* x, int64_t rows, int64_t dim, const float* weight, float eps) {
  RmsNormTo(x, rows, dim, weight, eps, x);
}

void SiluMul(float* g, const float* u, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = g[i];
    g[i] = v / (1.0f + std::exp(-v)) * u[i];
  }
}

void Softmax(float* x, int64_t n) {
  if (n <= 0) return;
  const float m = *std::max_element(x, x + n);
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - m);
    sum += x[i];
  }
  const float inv = 1.0f / sum;
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void AddSharedExpert(const float* h, const float* shared, const float* gate_weight, int64_t rows, int hidden,
                     float* y) {
  for (int64_t r = 0; r < rows; ++r) {
    float gate = 1.0f;
    if (gate_weight != nullptr) gate = 1.0f / (1.0f + std::exp(-Dot(h + r * hidden, gate_weight, hidden)));
    for (int64_t j = 0; j < hidden; ++j) y[r * hidden + j] += gate * shared[r * hidden + j];
  }
}

std::vector<std::vector<int32_t>> AssignmentsByExpert(const int32_t* experts, const uint8_t* kept, int num_tokens,
                                                      int top_k, int num_experts) {
  std::vector<std::vector<int32_t>> assigned(num_experts);
  for (int32_t a = 0; a < num_tokens * top_k; ++a) {
    if (kept[a]) assigned[experts[a]].push_back(a);
  }
  return assigned;
}

void GatherAssignedRows(const float* x, const std::vector<int32_t>& assignments, int top_k, int64_t hidden,
                        float* dst) {
  for (size_t i = 0; i < assignments.size(); ++i) {
    std::copy_n(x + static_cast<int64_t>(assignments[i] / top_k) * hidden, hidden, dst + i * hidden);
  }
}

void AddWeightedExpertOutputs(const std::vector<std::vector<int32_t>>& assigned,
                              const std::vector<std::vector<float>>& results, const float* routing_weights, int top_k,
                              int64_t hidden, float* out) {
  for (size_t e = 0; e < assigned.size(); ++e) {
    const std::vector<int32_t>& rows = assigned[e];
    for (size_t i = 0; i < rows.size(); ++i) {
      const float w = routing_weights[rows[i]];
      float* dst = out + static_cast<int64_t>(rows[i] / top_k) * hidden;
      const float* src = results[e].data() + i * hidden;
      for (int64_t j = 0; j < hidden; ++j) dst[j] += w * src[j];
    }
  }
}

}  // namespace moed::cpu
