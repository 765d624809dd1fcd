// Sampler: greedy, top-k/top-p limits, the sampled distribution, seed determinism and batch independence.
#include "engine/runtime/sampler.h"

#include <cmath>
#include <map>
#include <vector>

#include "gtest/gtest.h"

namespace moed {
namespace {

const std::vector<float> kLogits = {0.1f, 2.0f, -1.0f, 2.0f, 1.5f, 0.0f};

SamplingParams Params(float t, float top_p = 1.0f, int top_k = 0, uint64_t seed = 0) {
  SamplingParams p;
  p.temperature = t;
  p.top_p = top_p;
  p.top_k = top_k;
  p.seed = seed;
  return p;
}

TEST(SamplerTest, GreedyTakesLowestIdOnTies) {
  EXPECT_EQ(SampleToken(kLogits, Params(0), 0).token, 1);
  EXPECT_EQ(SampleToken(kLogits, Params(0), 99).token, 1);
}

TEST(SamplerTest, TopKOneAndTinyTopPEqualGreedy) {
  for (int i = 0; i < 200; ++i) {
    EXPECT_EQ(SampleToken(kLogits, Params(1.3f, 1.0f, 1, i), i).token, 1);
    EXPECT_EQ(SampleToken(kLogits, Params(1.3f, 1e-6f, 0, i), i).token, 1);
  }
}

TEST(SamplerTest, LogprobsAreLogSoftmaxOfRawLogits) {
  SamplingParams p = Params(0);
  p.logprobs = 3;
  const SampledToken t = SampleToken(kLogits, p, 0);
  double z = 0;
  for (float v : kLogits) z += std::exp(v);
  EXPECT_NEAR(t.logprob, 2.0 - std::log(z), 1e-6);
  ASSERT_EQ(t.top_logprobs.size(), 3u);
  EXPECT_EQ(t.top_logprobs[0].token, 1);
  EXPECT_EQ(t.top_logprobs[1].token, 3);
  EXPECT_EQ(t.top_logprobs[2].token, 4);
  EXPECT_NEAR(t.top_logprobs[2].logprob, 1.5 - std::log(z), 1e-6);
}

// Draws n samples and returns the chi-square statistic against `expected` probabilities.
double ChiSquare(const std::vector<float>& logits, const SamplingParams& p, const std::vector<double>& expected,
                 int n) {
  std::vector<int> counts(logits.size(), 0);
  for (int i = 0; i < n; ++i) ++counts[SampleToken(logits, p, i).token];
  double chi = 0;
  for (size_t k = 0; k < logits.size(); ++k) {
    if (expected[k] == 0) {
      EXPECT_EQ(counts[k], 0) << "token " << k << " must never be drawn";
      continue;
    }
    const double e = expected[k] * n;
    chi += (counts[k] - e) * (counts[k] - e) / e;
  }
  return chi;
}

TEST(SamplerTest, DistributionMatchesSoftmaxWithTemperature) {
  const std::vector<float> logits = {std::log(0.1f), std::log(0.2f), std::log(0.3f), std::log(0.4f)};
  // T = 1: probabilities 0.1..0.4. 3 degrees of freedom: p = 0.001 at χ² = 16.3.
  EXPECT_LT(ChiSquare(logits, Params(1.0f, 1.0f, 0, 42), {0.1, 0.2, 0.3, 0.4}, 20000), 16.3);
  // T = 0.5 squares the probabilities: 0.01, 0.04, 0.09, 0.16 over 0.30.
  EXPECT_LT(ChiSquare(logits, Params(0.5f, 1.0f, 0, 7), {1 / 30.0, 4 / 30.0, 9 / 30.0, 16 / 30.0}, 20000), 16.3);
}

TEST(SamplerTest, TopKAndTopPRestrictAndRenormalise) {
  const std::vector<float> logits = {std::log(0.1f), std::log(0.2f), std::log(0.3f), std::log(0.4f)};
  // top-k 2 keeps {0.3, 0.4} → 3/7, 4/7 (1 degree of freedom: p = 0.001 at 10.8).
  EXPECT_LT(ChiSquare(logits, Params(1.0f, 1.0f, 2, 3), {0, 0, 3 / 7.0, 4 / 7.0}, 20000), 10.8);
  // top-p 0.65: 0.4 + 0.3 = 0.7 ≥ 0.65 is the smallest such prefix.
  EXPECT_LT(ChiSquare(logits, Params(1.0f, 0.65f, 0, 5), {0, 0, 3 / 7.0, 4 / 7.0}, 20000), 10.8);
  // top-p 0.75: the two best hold 0.7 < 0.75, so the third (0.2) joins: {0.2, 0.3, 0.4} over 0.9.
  EXPECT_LT(ChiSquare(logits, Params(1.0f, 0.75f, 0, 5), {0, 2 / 9.0, 3 / 9.0, 4 / 9.0}, 20000), 13.8);
}

TEST(SamplerTest, DeterministicBySeedAndIndexOnly) {
  std::vector<float> logits(50);
  for (int i = 0; i < 50; ++i) logits[i] = std::sin(i * 0.7f);
  std::vector<int32_t> a, b, c;
  for (int i = 0; i < 100; ++i) {
    a.push_back(SampleToken(logits, Params(1.0f, 0.9f, 20, 1234), i).token);
    b.push_back(SampleToken(logits, Params(1.0f, 0.9f, 20, 1234), i).token);
    c.push_back(SampleToken(logits, Params(1.0f, 0.9f, 20, 1235), i).token);
  }
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  // Another sequence's draws in between (a different batch composition) change nothing: the draw of
  // index i depends on (seed, i) only.
  std::vector<int32_t> interleaved;
  for (int i = 0; i < 100; ++i) {
    SampleToken(logits, Params(0.7f, 1.0f, 0, 99), i);
    interleaved.push_back(SampleToken(logits, Params(1.0f, 0.9f, 20, 1234), i).token);
  }
  EXPECT_EQ(a, interleaved);
  EXPECT_EQ(CounterUniform(5, 6), CounterUniform(5, 6));
  EXPECT_NE(CounterUniform(5, 6), CounterUniform(6, 5));
}

TEST(SamplerTest, ValidatesParams) {
  EXPECT_TRUE(ValidateSamplingParams(Params(0.7f, 0.9f, 5), 10).ok());
  EXPECT_FALSE(ValidateSamplingParams(Params(-1.0f), 10).ok());
  EXPECT_FALSE(ValidateSamplingParams(Params(NAN), 10).ok());
  EXPECT_FALSE(ValidateSamplingParams(Params(1.0f, 0.0f), 10).ok());
  EXPECT_FALSE(ValidateSamplingParams(Params(1.0f, 1.5f), 10).ok());
  EXPECT_FALSE(ValidateSamplingParams(Params(1.0f, 1.0f, -2), 10).ok());
  SamplingParams p;
  p.logprobs = 11;
  EXPECT_FALSE(ValidateSamplingParams(p, 10).ok());
}

}  // namespace
}  // namespace moed
