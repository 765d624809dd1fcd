// RoPE of the model definition: the inverse frequencies of every RopeType against the formulas (transformers'
// conventions), and the rotation's pairing (rotate-half or interleaved) and attention factor.
#include "engine/model/rope.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "gtest/gtest.h"

namespace moed {
namespace {

RopeSpec Rope(RopeType type, int dim, float factor = 1.0f, int original = 512) {
  RopeSpec r;
  r.type = type;
  r.theta = 10000.0f;
  r.dim = dim;
  r.factor = factor;
  r.original_max_position = original;
  return r;
}

double Default(int i, int dim, double base = 10000.0) { return 1.0 / std::pow(base, 2.0 * i / dim); }

TEST(RopeTest, DefaultAndLinear) {
  const std::vector<float> d = RopeInvFreq(Rope(RopeType::kDefault, 16));
  const std::vector<float> lin = RopeInvFreq(Rope(RopeType::kLinear, 16, 4.0f));
  ASSERT_EQ(d.size(), 8u);
  for (int i = 0; i < 8; ++i) {
    EXPECT_NEAR(d[i], Default(i, 16), 1e-6 * Default(i, 16));
    EXPECT_NEAR(lin[i], Default(i, 16) / 4, 1e-6 * Default(i, 16));
  }
}

TEST(RopeTest, DynamicGrowsTheBaseOnlyPastTheOriginalContext) {
  const RopeSpec r = Rope(RopeType::kDynamic, 16, 2.0f, 128);
  EXPECT_EQ(RopeInvFreq(r, 128), RopeInvFreq(Rope(RopeType::kDefault, 16)));
  const std::vector<float> grown = RopeInvFreq(r, 512);
  const double base = 10000.0 * std::pow(2.0 * 512 / 128 - 1, 16.0 / 14.0);
  for (int i = 0; i < 8; ++i) EXPECT_NEAR(grown[i], Default(i, 16, base), 1e-5 * Default(i, 16, base)) << i;
}

// dim 16, theta 1e4, original 512, beta 32/1: correction dims 0.81 → 0 and 3.82 → 4, so dim pairs 0 keep their
// frequency, pairs ≥ 4 are divided by the factor, and pairs 1..3 ramp linearly between the two.
TEST(RopeTest, YarnRampsBetweenExtrapolationAndInterpolation) {
  RopeSpec r = Rope(RopeType::kYarn, 16, 8.0f, 512);
  const std::vector<float> inv = RopeInvFreq(r);
  for (int i = 0; i < 8; ++i) {
    const double ramp = std::clamp(i / 4.0, 0.0, 1.0);
    const double want = Default(i, 16) / 8 * ramp + Default(i, 16) * (1 - ramp);
    EXPECT_NEAR(inv[i], want, 1e-6 * want) << i;
  }
  EXPECT_NEAR(YarnMscale(40.0f, 0.707f), 0.1 * 0.707 * std::log(40.0) + 1, 1e-6);
  EXPECT_EQ(YarnMscale(1.0f, 0.707f), 1.0f);
}

TEST(RopeTest, InterleavedPairsAndAttentionFactor) {
  RopeSpec r = Rope(RopeType::kDefault, 4);
  const std::vector<float> inv = RopeInvFreq(r);
  const std::vector<float> x = {1.0f, 2.0f, 3.0f, 4.0f};
  std::vector<float> half = x, inter = x;
  ApplyRope(r, inv.data(), 3, half.data());
  r.interleave = true;
  r.attention_factor = 2.0f;
  ApplyRope(r, inv.data(), 3, inter.data());
  const double c0 = std::cos(3.0), s0 = std::sin(3.0), c1 = std::cos(3.0 * inv[1]), s1 = std::sin(3.0 * inv[1]);
  EXPECT_NEAR(half[0], 1 * c0 - 3 * s0, 1e-5);  // rotate-half: (0, 2) and (1, 3)
  EXPECT_NEAR(half[2], 3 * c0 + 1 * s0, 1e-5);
  EXPECT_NEAR(half[1], 2 * c1 - 4 * s1, 1e-5);
  EXPECT_NEAR(inter[0], 2 * (1 * c0 - 2 * s0), 1e-5);  // interleaved: (0, 1) and (2, 3), cos/sin × 2
  EXPECT_NEAR(inter[1], 2 * (2 * c0 + 1 * s0), 1e-5);
  EXPECT_NEAR(inter[3], 2 * (4 * c1 + 3 * s1), 1e-5);
}

}  // namespace
}  // namespace moed
