// ZipfRouting: distinct in-range experts per token, reproducible per seed, first-pick frequencies equal to the Zipf
// probabilities within 5 binomial standard deviations, exponent 0 uniform.
#include "engine/cache/zipf_routing.h"

#include <cmath>
#include <set>
#include <vector>

#include "gtest/gtest.h"

namespace moed::cache {
namespace {

TEST(ZipfRoutingTest, DistinctExpertsInRangeAndReproducible) {
  ZipfRouting a(3, 8, 2, 1.2, 7), b(3, 8, 2, 1.2, 7);
  std::vector<int32_t> x(64 * 2), y(64 * 2);
  for (int l = 0; l < 3; ++l) {
    a.Draw(l, 64, x.data());
    b.Draw(l, 64, y.data());
    EXPECT_EQ(x, y);
    for (int r = 0; r < 64; ++r) {
      EXPECT_NE(x[2 * r], x[2 * r + 1]);
      for (int j = 0; j < 2; ++j) EXPECT_TRUE(x[2 * r + j] >= 0 && x[2 * r + j] < 8);
    }
  }
  ZipfRouting all(1, 4, 4, 3.0, 1);  // top_k = every expert: each token names all four
  std::vector<int32_t> z(4);
  all.Draw(0, 1, z.data());
  EXPECT_EQ(std::set<int32_t>(z.begin(), z.end()).size(), 4u);
}

void ExpectFirstPicksFollow(double exponent) {
  constexpr int kE = 16, kN = 40000;
  ZipfRouting z(2, kE, 2, exponent, 42);
  std::vector<int32_t> ids(kN * 2);
  z.Draw(1, kN, ids.data());
  std::vector<int> count(kE, 0);
  for (int r = 0; r < kN; ++r) ++count[ids[2 * r]];
  for (int rank = 0; rank < kE; ++rank) {
    const double p = z.FirstPickProbability(rank);
    const double sigma = std::sqrt(kN * p * (1 - p));
    EXPECT_NEAR(count[z.ExpertOfRank(1, rank)], kN * p, 5 * sigma) << "exponent " << exponent << " rank " << rank;
  }
}

TEST(ZipfRoutingTest, FirstPicksFollowTheZipfProbabilities) {
  ExpectFirstPicksFollow(1.1);
  ExpectFirstPicksFollow(0.0);
  ZipfRouting u(1, 16, 2, 0.0, 1);
  EXPECT_DOUBLE_EQ(u.FirstPickProbability(0), 1.0 / 16);
  ZipfRouting s(1, 16, 2, 1.1, 1);
  EXPECT_GT(s.FirstPickProbability(0), 10 * s.FirstPickProbability(15) * 1.0) << "16^1.1 ≈ 21× skew";
}

// With equal router logits, the bias alone makes softmax first picks follow the Zipf weights of ZipfRouting.
TEST(ZipfRoutingTest, LogitBiasGivesTheZipfOddsToEqualLogits) {
  constexpr int kL = 3, kE = 8;
  const std::vector<float> bias = ZipfLogitBias(kL, kE, 1.2, 9);
  const ZipfRouting z(kL, kE, 1, 1.2, 9);
  for (int l = 0; l < kL; ++l) {
    double total = 0;
    for (int e = 0; e < kE; ++e) total += std::exp(bias[l * kE + e]);
    for (int r = 0; r < kE; ++r) {
      EXPECT_NEAR(std::exp(bias[l * kE + z.ExpertOfRank(l, r)]) / total, z.FirstPickProbability(r), 1e-6)
          << "layer " << l << " rank " << r;
    }
  }
  EXPECT_NE(ZipfLogitBias(2, kE, 1.2, 9), ZipfLogitBias(2, kE, 1.2, 10)) << "the seed picks the popularity order";
}

}  // namespace
}  // namespace moed::cache
