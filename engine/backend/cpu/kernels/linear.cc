// Dispatch of the fast linear kernels by Isa, the portable scalar kernel, and row splitting across threads.
#include "engine/backend/cpu/kernels/linear.h"

#include <algorithm>

#include "engine/backend/cpu/kernels/linear_kernels.h"

namespace moed::cpu {
namespace kernels {

void RowsScalar(const float* x, int64_t n, int64_t k, const void* w, DType dt, int64_t r0, int64_t r1, float* y,
                int64_t ldy) {
  constexpr int kLanes = 8;  // independent partial sums, so the compiler can vectorise without reassociating
  for (int64_t r = r0; r < r1; ++r) {
    for (int64_t t = 0; t < n; ++t) {
      const float* xt = x + t * k;
      float acc[kLanes] = {};
      int64_t i = 0;
      for (; i + kLanes <= k; i += kLanes) {
        for (int l = 0; l < kLanes; ++l) acc[l] += xt[i + l] * LoadAsFloat(w, dt, r * k + i + l);
      }
      float s = 0;
      for (int l = 0; l < kLanes; ++l) s += acc[l];
      for (; i < k; ++i) s += xt[i] * LoadAsFloat(w, dt, r * k + i);
      y[t * ldy + r] = s;
    }
  }
}

}  // namespace kernels

namespace {

Isa Clamp(Isa isa) { return std::min(isa, DetectedIsa()); }

}  // namespace

bool UsesBf16Dot(const KernelConfig& cfg, const WeightMatrix& w, int64_t n) {
  return cfg.bf16_dot_min_rows > 0 && n >= cfg.bf16_dot_min_rows && Clamp(cfg.isa) >= Isa::kAvx512Bf16 &&
         w.dtype == DType::kBF16 && w.cols % 2 == 0;
}

void RoundToBf16(const float* x, int64_t count, uint16_t* out) {
  if (DetectedIsa() >= Isa::kAvx512Bf16) {
    kernels::RoundToBf16Avx512(x, count, out);
    return;
  }
  for (int64_t i = 0; i < count; ++i) out[i] = FloatToBf16(x[i]);
}

bool UsesSplitInput(Isa isa, const WeightMatrix& w, int64_t n) {
  return n >= 1 && Clamp(isa) >= Isa::kAvx512 && w.dtype == DType::kBF16 && w.cols % 32 == 0;
}

LinearInput PrepareInput(const float* x, int64_t n, int64_t k, const WeightMatrix& w, const KernelConfig& cfg,
                         InputScratch* scratch) {
  LinearInput in{x, nullptr, n, k};
  if (UsesBf16Dot(cfg, w, n)) {
    scratch->bf16.resize(n * k);
    RoundToBf16(x, n * k, scratch->bf16.data());
    in.x_bf16 = scratch->bf16.data();
  } else if (UsesSplitInput(cfg.isa, w, n)) {
    scratch->split.resize(n * k);
    kernels::SplitRowsAvx512(x, n, k, scratch->split.data());  // UsesSplitInput: AVX-512, k % 32 == 0
    in.x_split = scratch->split.data();
  }
  return in;
}

void LinearRows(Isa isa, const LinearInput& in, const WeightMatrix& w, int64_t r0, int64_t r1, float* y,
                int64_t ldy) {
  if (r0 >= r1 || in.n == 0) return;
  switch (Clamp(isa)) {
    case Isa::kAvx512Bf16:
      if (in.x_bf16 != nullptr && w.dtype == DType::kBF16 && in.k % 2 == 0) {
        kernels::RowsAvx512Bf16Dot(in.x_bf16, in.n, in.k, static_cast<const uint16_t*>(w.data), r0, r1, y, ldy);
        return;
      }
      [[fallthrough]];
    case Isa::kAvx512:
      kernels::RowsAvx512(in.x, UsesSplitInput(isa, w, in.n) ? in.x_split : nullptr, in.n, in.k, w.data, w.dtype, r0,
                          r1, y, ldy);
      return;
    case Isa::kAvx2: kernels::RowsAvx2(in.x, in.n, in.k, w.data, w.dtype, r0, r1, y, ldy); return;
    case Isa::kScalar: kernels::RowsScalar(in.x, in.n, in.k, w.data, w.dtype, r0, r1, y, ldy); return;
  }
}

void Linear(const KernelConfig& cfg, const float* x, int64_t n, const WeightMatrix& w, const float* bias, float* y,
            ThreadPool* pool) {
  InputScratch scratch;
  const LinearInput in = PrepareInput(x, n, w.cols, w, cfg, &scratch);
  // Below ~256K multiply-adds (~0.5 MB of bf16 weights, tens of µs) a thread hand-off costs about what it saves.
  constexpr int64_t kMinParallelWork = 1 << 18;
  constexpr int64_t kRowAlign = 8;  // ranges keep whole register tiles
  if (pool == nullptr || pool->size() == 1 || n * w.cols * w.rows < kMinParallelWork || w.rows < 2 * kRowAlign) {
    LinearRows(cfg.isa, in, w, 0, w.rows, y, w.rows);
  } else {
    const int64_t groups = (w.rows + kRowAlign - 1) / kRowAlign;
    pool->ParallelFor(groups, [&](int64_t gb, int64_t ge) {
      LinearRows(cfg.isa, in, w, gb * kRowAlign, std::min(w.rows, ge * kRowAlign), y, w.rows);
    });
  }
  if (bias != nullptr) {
    for (int64_t t = 0; t < n; ++t) {
      for (int64_t r = 0; r < w.rows; ++r) y[t * w.rows + r] += bias[r];
    }
  }
}

}  // namespace moed::cpu
