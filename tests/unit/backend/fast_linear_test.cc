// The fast linear kernels at every instruction-set level this CPU has, against a double-precision scalar reference
// on random inputs of several shapes (tails, remainders of the register tiles, token blocks) and all weight dtypes.
#include "engine/backend/cpu/kernels/linear.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace moed::cpu {
namespace {

struct Weights {
  std::vector<uint16_t> half;  // bf16 or f16 storage
  std::vector<float> f32;
  std::vector<double> exact;  // the stored values, widened exactly
  WeightMatrix view;
};

uint16_t FloatToF16(float f) {  // round-to-nearest for the normal range used here (|f| in [2^-14, 65504])
  uint32_t b;
  std::memcpy(&b, &f, 4);
  const uint32_t sign = (b >> 16) & 0x8000u;
  const int exp = static_cast<int>((b >> 23) & 0xff) - 127 + 15;
  if (exp <= 0) return static_cast<uint16_t>(sign);  // flush tiny values to zero
  uint32_t mant = b & 0x7fffffu;
  uint32_t h = sign | (static_cast<uint32_t>(exp) << 10) | (mant >> 13);
  const uint32_t rest = mant & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;
  return static_cast<uint16_t>(h);
}

Weights MakeWeights(DType dt, int64_t rows, int64_t cols, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  Weights w;
  const int64_t n = rows * cols;
  w.exact.resize(n);
  if (dt == DType::kF32) {
    w.f32.resize(n);
    for (int64_t i = 0; i < n; ++i) w.exact[i] = w.f32[i] = u(rng);
    w.view = {w.f32.data(), dt, rows, cols};
  } else {
    w.half.resize(n);
    for (int64_t i = 0; i < n; ++i) {
      const float f = u(rng);
      w.half[i] = dt == DType::kBF16 ? FloatToBf16(f) : FloatToF16(f);
      w.exact[i] = LoadAsFloat(w.half.data(), dt, i);
    }
    w.view = {w.half.data(), dt, rows, cols};
  }
  return w;
}

// ref (n, rows) in double; mag (n, rows) = Σ|x·w| for the error bound. round_x: x rounded to bf16 first.
void Reference(const std::vector<float>& x, int64_t n, const Weights& w, bool round_x, std::vector<double>* ref,
               std::vector<double>* mag) {
  const int64_t rows = w.view.rows, k = w.view.cols;
  ref->assign(n * rows, 0.0);
  mag->assign(n * rows, 0.0);
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t r = 0; r < rows; ++r) {
      double s = 0, m = 0;
      for (int64_t i = 0; i < k; ++i) {
        const double xv = round_x ? Bf16ToFloat(FloatToBf16(x[t * k + i])) : x[t * k + i];
        s += xv * w.exact[r * k + i];
        m += std::fabs(xv * w.exact[r * k + i]);
      }
      (*ref)[t * rows + r] = s;
      (*mag)[t * rows + r] = m;
    }
  }
}

std::vector<Isa> Levels() {
  std::vector<Isa> out;
  for (Isa i : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kAvx512Bf16}) {
    if (i <= DetectedIsa()) out.push_back(i);
  }
  return out;
}

struct Shape {
  int64_t n, rows, k;
};

// fp32 accumulation of k products: a few units of 2^-24 per term of Σ|x·w| (the bound the data needs: the
// measured worst case is ~1e-7 relative).
constexpr double kFp32Rel = 1e-6;

TEST(LinearKernels, EveryLevelDtypeAndShapeMatchesDoubleReference) {
  std::mt19937 rng(7);
  const Shape shapes[] = {{1, 1, 1},      {1, 7, 16},     {1, 33, 100}, {2, 9, 64},     {3, 17, 31},
                          {5, 8, 128},    {6, 12, 48},    {7, 13, 200}, {13, 21, 1024}, {64, 40, 96},
                          {1, 300, 1024}, {150, 9, 2816}, {4, 5, 32},   {3, 11, 160},   {1, 9, 96}, {1, 5, 32}};
  for (DType dt : {DType::kBF16, DType::kF16, DType::kF32}) {
    for (const Shape& s : shapes) {
      const Weights w = MakeWeights(dt, s.rows, s.k, rng);
      std::vector<float> x(s.n * s.k);
      std::uniform_real_distribution<float> u(-1.0f, 1.0f);
      for (float& v : x) v = u(rng);
      std::vector<double> ref, mag;
      Reference(x, s.n, w, /*round_x=*/false, &ref, &mag);
      // Every level, with raw x and with x as PrepareInput lays it out (the pair-split layout on AVX-512).
      for (Isa isa : Levels()) {
        for (bool prepared : {false, true}) {
          std::vector<float> y(s.n * s.rows, NAN);
          InputScratch scratch;
          const LinearInput in = prepared ? PrepareInput(x.data(), s.n, s.k, w.view, {isa, 0}, &scratch)
                                          : LinearInput{x.data(), nullptr, s.n, s.k};
          LinearRows(isa, in, w.view, 0, s.rows, y.data(), s.rows);
          for (size_t i = 0; i < y.size(); ++i) {
            ASSERT_LE(std::fabs(y[i] - ref[i]), kFp32Rel * mag[i] + 1e-30)
                << IsaName(isa) << (prepared ? " prepared " : " raw ") << DTypeName(dt) << " n=" << s.n
                << " rows=" << s.rows << " k=" << s.k << " at " << i << ": " << y[i] << " vs " << ref[i];
          }
        }
      }
    }
  }
}

TEST(LinearKernels, RowRangesWriteOnlyTheirRows) {
  std::mt19937 rng(3);
  const Weights w = MakeWeights(DType::kBF16, 37, 80, rng);
  std::vector<float> x(5 * 80, 0.5f);
  for (Isa isa : Levels()) {
    std::vector<float> y(5 * 37, -7.0f);
    LinearRows(isa, {x.data(), nullptr, 5, 80}, w.view, 11, 29, y.data(), 37);
    for (int64_t t = 0; t < 5; ++t) {
      for (int64_t r = 0; r < 37; ++r) {
        if (r < 11 || r >= 29) EXPECT_EQ(y[t * 37 + r], -7.0f) << IsaName(isa);
        else EXPECT_NE(y[t * 37 + r], -7.0f) << IsaName(isa);
      }
    }
  }
}

TEST(LinearKernels, Bf16DotMatchesReferenceOnRoundedActivations) {
  if (DetectedIsa() < Isa::kAvx512Bf16) GTEST_SKIP() << "no AVX512_BF16 on this CPU";
  std::mt19937 rng(11);
  const KernelConfig cfg{Isa::kAvx512Bf16, /*bf16_dot_min_rows=*/2};
  const Shape shapes[] = {{2, 5, 2}, {6, 8, 64}, {7, 9, 34}, {13, 17, 1024}, {100, 12, 2816}, {31, 4, 30}};
  for (const Shape& s : shapes) {
    const Weights w = MakeWeights(DType::kBF16, s.rows, s.k, rng);
    std::vector<float> x(s.n * s.k);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (float& v : x) v = u(rng);
    InputScratch scratch;
    const LinearInput in = PrepareInput(x.data(), s.n, s.k, w.view, cfg, &scratch);
    ASSERT_NE(in.x_bf16, nullptr);
    for (int64_t i = 0; i < s.n * s.k; ++i) ASSERT_EQ(in.x_bf16[i], FloatToBf16(x[i])) << i;
    std::vector<float> y(s.n * s.rows);
    LinearRows(cfg.isa, in, w.view, 0, s.rows, y.data(), s.rows);
    std::vector<double> ref, mag, exact, exact_mag;
    Reference(x, s.n, w, /*round_x=*/true, &ref, &mag);
    Reference(x, s.n, w, /*round_x=*/false, &exact, &exact_mag);
    for (size_t i = 0; i < y.size(); ++i) {
      ASSERT_LE(std::fabs(y[i] - ref[i]), kFp32Rel * mag[i]) << "n=" << s.n << " k=" << s.k << " at " << i;
      // Against unrounded x: rounding moves each x by at most 2^-8 of itself (half a bf16 ulp).
      ASSERT_LE(std::fabs(y[i] - exact[i]), std::ldexp(1.0, -8) * exact_mag[i] + kFp32Rel * mag[i]);
    }
  }
}

TEST(LinearKernels, LinearSplitsRowsAcrossThreadsAndAddsBias) {
  std::mt19937 rng(5);
  ThreadPool pool(3);
  for (int64_t n : {1, 4, 9}) {
    const Weights w = MakeWeights(DType::kBF16, 515, 256, rng);
    std::vector<float> x(n * 256), bias(515);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (float& v : x) v = u(rng);
    for (float& v : bias) v = u(rng);
    const KernelConfig cfg{ActiveIsa(), 0};
    std::vector<float> one(n * 515), many(n * 515);
    Linear(cfg, x.data(), n, w.view, bias.data(), one.data(), nullptr);
    Linear(cfg, x.data(), n, w.view, bias.data(), many.data(), &pool);
    std::vector<double> ref, mag;
    Reference(x, n, w, false, &ref, &mag);
    for (size_t i = 0; i < one.size(); ++i) {
      EXPECT_EQ(one[i], many[i]) << "thread split changed a result at " << i;
      EXPECT_NEAR(one[i], ref[i] + bias[i % 515], kFp32Rel * mag[i] + 1e-6) << i;
    }
  }
}

// Batch invariance (prefix caching on or off changes how a step's rows are batched; logprobs must not move): a row
// computed alone and at several positions inside batches of several sizes gives bitwise the same outputs, at every
// level, dtype and a k with and without the pair-split layout, threaded or not.
TEST(LinearKernels, RowAloneEqualsRowInsideAnyBatch) {
  std::mt19937 rng(23);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  ThreadPool pool(3);
  for (DType dt : {DType::kBF16, DType::kF16, DType::kF32}) {
    for (int64_t k : {int64_t{100}, int64_t{1024}, int64_t{2816}, int64_t{96}}) {
      const Weights w = MakeWeights(dt, 67, k, rng);
      std::vector<float> row(k);
      for (float& v : row) v = u(rng);
      for (Isa isa : Levels()) {
        const KernelConfig cfg{isa, 0};
        std::vector<float> alone(67);
        Linear(cfg, row.data(), 1, w.view, nullptr, alone.data(), nullptr);
        for (int64_t n : {2, 3, 4, 5, 6, 7, 13, 40}) {
          for (int64_t at : {int64_t{0}, n / 2, n - 1}) {
            std::vector<float> x(n * k);
            for (float& v : x) v = u(rng);
            std::copy(row.begin(), row.end(), x.begin() + at * k);
            std::vector<float> y(n * 67);
            Linear(cfg, x.data(), n, w.view, nullptr, y.data(), n % 2 == 0 ? &pool : nullptr);
            for (int64_t r = 0; r < 67; ++r) {
              ASSERT_EQ(y[at * 67 + r], alone[r]) << IsaName(isa) << " " << DTypeName(dt) << " k=" << k << " batch of "
                                                  << n << " at " << at << ", output " << r;
            }
          }
        }
      }
    }
  }
}

TEST(Isa, NamesRoundTripAndActiveIsAtMostDetected) {
  for (Isa i : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kAvx512Bf16}) {
    Isa back;
    ASSERT_TRUE(ParseIsa(IsaName(i), &back));
    EXPECT_EQ(back, i);
  }
  Isa dummy;
  EXPECT_FALSE(ParseIsa("sse9", &dummy));
  EXPECT_LE(ActiveIsa(), DetectedIsa());
}

}  // namespace
}  // namespace moed::cpu
