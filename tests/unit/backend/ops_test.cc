// Unit tests of the CPU op kernels against plain double-precision loops.
#include "engine/backend/cpu/ops.h"

#include <cmath>
#include <random>
#include <vector>

#include "engine/model/rope.h"
#include "gtest/gtest.h"

namespace moed::cpu {
namespace {

std::vector<float> Random(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0, 1);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

TEST(OpsTest, MatMulMatchesNaiveForManyShapes) {
  ThreadPool pool(2);
  for (auto [n, in, out] : std::vector<std::tuple<int, int, int>>{
           {1, 1, 1}, {1, 7, 5}, {3, 16, 4}, {2, 33, 37}, {5, 128, 256}, {17, 64, 1024}, {1, 128, 4096}}) {
    const auto x = Random(n * in, 1), w = Random(out * in, 2), b = Random(out, 3);
    std::vector<float> y(n * out), yp(n * out);
    MatMul(x.data(), n, in, w.data(), out, b.data(), y.data(), nullptr);
    MatMul(x.data(), n, in, w.data(), out, b.data(), yp.data(), &pool);
    for (int t = 0; t < n; ++t) {
      for (int o = 0; o < out; ++o) {
        double ref = b[o];
        for (int i = 0; i < in; ++i) ref += static_cast<double>(x[t * in + i]) * w[o * in + i];
        ASSERT_NEAR(y[t * out + o], ref, 1e-4 * (1 + std::sqrt(in))) << n << "x" << in << "x" << out;
        ASSERT_EQ(y[t * out + o], yp[t * out + o]) << "thread split must not change results";
      }
    }
  }
}

// Batch invariance of the reference (prefix caching on or off batches rows differently; logprobs must not move): a
// row alone and at several positions inside batches of several sizes gives bitwise the same outputs, threaded or not,
// for widths with and without a tail and output counts that leave the pair and four-row kernels a remainder.
TEST(OpsTest, MatMulRowAloneEqualsRowInsideAnyBatch) {
  ThreadPool pool(3);
  for (auto [in, out] : std::vector<std::pair<int, int>>{{16, 7}, {100, 37}, {1024, 131}, {33, 4096}}) {
    const auto w = Random(static_cast<size_t>(out) * in, 5), row = Random(in, 6);
    std::vector<float> alone(out);
    MatMul(row.data(), 1, in, w.data(), out, nullptr, alone.data(), nullptr);
    for (int n : {2, 3, 4, 5, 8, 13}) {
      for (int at : {0, n / 2, n - 1}) {
        auto x = Random(static_cast<size_t>(n) * in, 7 + n);
        std::copy(row.begin(), row.end(), x.begin() + static_cast<int64_t>(at) * in);
        std::vector<float> y(static_cast<size_t>(n) * out);
        MatMul(x.data(), n, in, w.data(), out, nullptr, y.data(), n % 2 == 0 ? &pool : nullptr);
        for (int o = 0; o < out; ++o) {
          ASSERT_EQ(y[static_cast<int64_t>(at) * out + o], alone[o])
              << "in " << in << " out " << out << ": batch of " << n << " at " << at << ", output " << o;
        }
      }
    }
  }
}

TEST(OpsTest, RmsNormMatchesDefinition) {
  const int dim = 37;
  const auto x = Random(2 * dim, 4), w = Random(dim, 5);
  std::vector<float> y(2 * dim);
  RmsNormTo(x.data(), 2, dim, w.data(), 1e-5f, y.data());
  for (int r = 0; r < 2; ++r) {
    double ms = 0;
    for (int i = 0; i < dim; ++i) ms += static_cast<double>(x[r * dim + i]) * x[r * dim + i];
    const double inv = 1.0 / std::sqrt(ms / dim + 1e-5);
    for (int i = 0; i < dim; ++i) EXPECT_NEAR(y[r * dim + i], w[i] * x[r * dim + i] * inv, 1e-5);
  }
}

TEST(OpsTest, SiluMulAndSoftmax) {
  std::vector<float> g = {-2.0f, 0.0f, 1.5f}, u = {3.0f, 4.0f, -1.0f};
  SiluMul(g.data(), u.data(), 3);
  EXPECT_NEAR(g[0], -2.0 / (1 + std::exp(2.0)) * 3.0, 1e-6);
  EXPECT_NEAR(g[1], 0.0, 1e-7);
  EXPECT_NEAR(g[2], -1.5 / (1 + std::exp(-1.5)), 1e-6);
  std::vector<float> s = {1000.0f, 1001.0f, 999.0f};
  Softmax(s.data(), 3);
  const double z = std::exp(-1.0) + 1 + std::exp(-2.0);
  EXPECT_NEAR(s[0], std::exp(-1.0) / z, 1e-6);
  EXPECT_NEAR(s[1], 1 / z, 1e-6);
  EXPECT_NEAR(s[2], std::exp(-2.0) / z, 1e-6);
}

TEST(OpsTest, RopeIsIdentityAtZeroAndRelative) {
  const int hd = 16;
  RopeSpec rope;
  rope.dim = hd;
  const std::vector<float> inv = RopeInvFreq(rope);
  EXPECT_FLOAT_EQ(inv[0], 1.0f);
  EXPECT_NEAR(inv[1], std::pow(10000.0, -2.0 / hd), 1e-7);
  const auto q = Random(hd, 6), k = Random(hd, 7);
  std::vector<float> q0 = q;
  ApplyRope(rope, inv.data(), 0, q0.data());
  for (int i = 0; i < hd; ++i) EXPECT_FLOAT_EQ(q0[i], q[i]);
  // rotate_half pairing: (i, i + hd/2) rotate by pos * inv_freq[i].
  std::vector<float> q3 = q;
  ApplyRope(rope, inv.data(), 3, q3.data());
  EXPECT_NEAR(q3[1], q[1] * std::cos(3 * inv[1]) - q[1 + hd / 2] * std::sin(3 * inv[1]), 1e-5);
  EXPECT_NEAR(q3[1 + hd / 2], q[1 + hd / 2] * std::cos(3 * inv[1]) + q[1] * std::sin(3 * inv[1]), 1e-5);
  // <rope(q, m), rope(k, n)> depends only on m - n.
  auto dot_at = [&](int m, int n) {
    std::vector<float> a = q, b = k;
    ApplyRope(rope, inv.data(), m, a.data());
    ApplyRope(rope, inv.data(), n, b.data());
    return Dot(a.data(), b.data(), hd);
  };
  EXPECT_NEAR(dot_at(5, 2), dot_at(13, 10), 1e-4);
  EXPECT_NEAR(dot_at(40, 1), dot_at(39, 0), 1e-4);
}

TEST(OpsTest, ThreadPoolVisitsEveryIndexOnce) {
  ThreadPool pool(3);
  for (int64_t n : {1, 2, 3, 10, 1000}) {
    std::vector<int> hits(n, 0);
    pool.ParallelFor(n, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) ++hits[i];
    });
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i], 1) << "n=" << n << " i=" << i;
  }
}

}  // namespace
}  // namespace moed::cpu
