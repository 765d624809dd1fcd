// Device sampling against engine/runtime/sampler.h: the same token for the same (logits, params, seed, index),
// greedy and filtered, plus the chosen token's logprob and the best alternatives — radix select and bisection.
#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "engine/backend/cuda/sampling.h"
#include "engine/runtime/sampler.h"
#include "tests/gpu/gpu_test_util.h"

namespace moed {
namespace {

using gpu_test::DevVec;

SamplingParams Params(float temperature, float top_p, int top_k, int logprobs, uint64_t seed) {
  SamplingParams p;
  p.temperature = temperature;
  p.top_p = top_p;
  p.top_k = top_k;
  p.logprobs = logprobs;
  p.seed = seed;
  return p;
}

// Every test runs with both selects: radix (the default) and bisection (the reference).
class CudaSamplingTest : public ::testing::TestWithParam<cuda::SampleSelect> {};
INSTANTIATE_TEST_SUITE_P(CudaSampling, CudaSamplingTest,
                         ::testing::Values(cuda::SampleSelect::kRadix, cuda::SampleSelect::kBisect),
                         [](const ::testing::TestParamInfo<cuda::SampleSelect>& i) {
                           return std::string(i.param == cuda::SampleSelect::kRadix ? "Radix" : "Bisect");
                         });

TEST_P(CudaSamplingTest, MatchesCpuSampler) {
  MOED_REQUIRE_GPU();
  std::mt19937 rng(21);
  // (temperature, top_p, top_k, logprobs, seed)
  const SamplingParams params[] = {
      Params(0.0f, 1.0f, 0, 1, 0),   Params(1.0f, 1.0f, 0, 5, 7),  Params(0.7f, 0.9f, 0, 0, 3),
      Params(1.3f, 1.0f, 40, 2, 11), Params(0.8f, 0.95f, 50, 0, 5), Params(1.0f, 0.5f, 1, 0, 9),
      Params(2.0f, 0.3f, 0, 20, 13), Params(0.5f, 1.0f, 1000, 0, 17),
  };
  for (int vocab : {1024, 32000, 151936}) {
    const int rows = 16;
    std::normal_distribution<float> nd(0.0f, 3.0f);
    std::vector<float> logits(static_cast<size_t>(rows) * vocab);
    for (float& v : logits) v = nd(rng);
    for (int i = 0; i < 4; ++i) logits[vocab + i] = 10.0f;  // ties in row 1: lowest id first
    std::vector<cuda::DeviceSamplingParams> dp(rows);
    int max_lp = 0;
    for (int r = 0; r < rows; ++r) {
      const SamplingParams& p = params[r % std::size(params)];
      dp[r] = {p.temperature, p.top_p, p.top_k, p.logprobs, p.seed + r, r * 3, 0};
      max_lp = std::max(max_lp, p.logprobs);
    }
    DevVec<float> d_logits(logits), d_lp(rows), d_top_lp(static_cast<size_t>(rows) * max_lp);
    DevVec<cuda::DeviceSamplingParams> d_params(dp);
    DevVec<int32_t> d_tokens(rows), d_top_ids(static_cast<size_t>(rows) * max_lp);
    MOED_CUDA_ASSERT(cuda::LaunchSample(d_logits.get(), rows, vocab, d_params.get(), max_lp, d_tokens.get(),
                                        d_lp.get(), d_top_ids.get(), d_top_lp.get(), nullptr, GetParam()));
    const std::vector<int32_t> tokens = d_tokens.Download(), top_ids = d_top_ids.Download();
    const std::vector<float> lps = d_lp.Download(), top_lps = d_top_lp.Download();
    for (int r = 0; r < rows; ++r) {
      SamplingParams p = params[r % std::size(params)];
      p.seed += r;
      const absl::Span<const float> row(logits.data() + static_cast<size_t>(r) * vocab, vocab);
      const SampledToken want = SampleToken(row, p, r * 3);
      EXPECT_EQ(tokens[r], want.token) << "vocab " << vocab << " row " << r;
      EXPECT_NEAR(lps[r], want.logprob, 1e-4) << "vocab " << vocab << " row " << r;
      std::vector<TokenLogprob> got;
      for (int i = 0; i < p.logprobs; ++i) {
        got.push_back({top_ids[static_cast<size_t>(r) * max_lp + i], top_lps[static_cast<size_t>(r) * max_lp + i]});
      }
      std::sort(got.begin(), got.end(), [](const TokenLogprob& a, const TokenLogprob& b) {
        return a.logprob > b.logprob || (a.logprob == b.logprob && a.token < b.token);
      });
      ASSERT_EQ(got.size(), want.top_logprobs.size());
      for (size_t i = 0; i < got.size(); ++i) {
        EXPECT_EQ(got[i].token, want.top_logprobs[i].token) << "row " << r << " rank " << i;
        EXPECT_NEAR(got[i].logprob, want.top_logprobs[i].logprob, 1e-4);
      }
    }
  }
}

// Many draws from one row follow the filtered distribution: with top_k = 3 only the 3 best tokens appear.
TEST_P(CudaSamplingTest, TopKRestrictsDrawsAndSeedsAreReproducible) {
  MOED_REQUIRE_GPU();
  const int vocab = 5000, rows = 256;
  std::mt19937 rng(22);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> row(vocab);
  for (float& v : row) v = nd(rng);
  std::vector<float> logits;
  std::vector<cuda::DeviceSamplingParams> dp(rows);
  for (int r = 0; r < rows; ++r) {
    logits.insert(logits.end(), row.begin(), row.end());
    dp[r] = {1.0f, 1.0f, 3, 0, 99, r, 0};
  }
  DevVec<float> d_logits(logits), d_lp(rows), d_top_lp(1);
  DevVec<cuda::DeviceSamplingParams> d_params(dp);
  DevVec<int32_t> d_tokens(rows), d_top_ids(1);
  MOED_CUDA_ASSERT(cuda::LaunchSample(d_logits.get(), rows, vocab, d_params.get(), 0, d_tokens.get(), d_lp.get(),
                                      d_top_ids.get(), d_top_lp.get(), nullptr, GetParam()));
  const std::vector<int32_t> tokens = d_tokens.Download();
  std::vector<int32_t> order(vocab);
  for (int i = 0; i < vocab; ++i) order[i] = i;
  std::partial_sort(order.begin(), order.begin() + 3, order.end(), [&](int a, int b) { return row[a] > row[b]; });
  int distinct_hits[3] = {0, 0, 0};
  for (int r = 0; r < rows; ++r) {
    const auto it = std::find(order.begin(), order.begin() + 3, tokens[r]);
    ASSERT_NE(it, order.begin() + 3) << "draw " << r << " picked token " << tokens[r] << " outside the top 3";
    ++distinct_hits[it - order.begin()];
    const SamplingParams p = Params(1.0f, 1.0f, 3, 0, 99);
    EXPECT_EQ(tokens[r], SampleToken(row, p, r).token);
  }
  EXPECT_GT(distinct_hits[0], 0);
}

// Bad logits (NaN, ±∞) must still give a token and alternatives inside the vocabulary, whatever the parameters:
// the kernel indexes the logits row with them.
TEST_P(CudaSamplingTest, BadLogitsStillGiveTokensInRange) {
  MOED_REQUIRE_GPU();
  const int vocab = 3000, kinds = 5;
  const SamplingParams params[] = {Params(0.0f, 1.0f, 0, 3, 1), Params(1.0f, 1.0f, 0, 3, 2),
                                   Params(0.8f, 0.9f, 0, 3, 3), Params(1.0f, 1.0f, 20, 3, 4)};
  const int rows = kinds * static_cast<int>(std::size(params));
  std::mt19937 rng(23);
  std::normal_distribution<float> nd(0.0f, 2.0f);
  std::vector<float> logits(static_cast<size_t>(rows) * vocab);
  std::vector<cuda::DeviceSamplingParams> dp(rows);
  for (int r = 0; r < rows; ++r) {
    const int kind = r % kinds;
    for (int i = 0; i < vocab; ++i) {
      float v = nd(rng);
      if (kind == 0) v = NAN;                              // nothing but NaN
      if (kind == 1 && i % 7 == 0) v = NAN;                // some NaN
      if (kind == 2 && i % 11 == 0) v = INFINITY;          // several +∞
      if (kind == 3) v = -INFINITY;                        // nothing but −∞
      if (kind == 4 && i % 2 == 0) v = -INFINITY;          // half −∞
      logits[static_cast<size_t>(r) * vocab + i] = v;
    }
    const SamplingParams& p = params[r / kinds];
    dp[r] = {p.temperature, p.top_p, p.top_k, p.logprobs, p.seed, r, 0};
  }
  DevVec<float> d_logits(logits), d_lp(rows), d_top_lp(static_cast<size_t>(rows) * 3);
  DevVec<cuda::DeviceSamplingParams> d_params(dp);
  DevVec<int32_t> d_tokens(rows), d_top_ids(static_cast<size_t>(rows) * 3);
  MOED_CUDA_ASSERT(cuda::LaunchSample(d_logits.get(), rows, vocab, d_params.get(), 3, d_tokens.get(), d_lp.get(),
                                      d_top_ids.get(), d_top_lp.get(), nullptr, GetParam()));
  const std::vector<int32_t> tokens = d_tokens.Download(), top_ids = d_top_ids.Download();
  for (int r = 0; r < rows; ++r) {
    EXPECT_GE(tokens[r], 0) << "row " << r;
    EXPECT_LT(tokens[r], vocab) << "row " << r;
    for (int i = 0; i < 3; ++i) {
      EXPECT_GE(top_ids[r * 3 + i], 0) << "row " << r;
      EXPECT_LT(top_ids[r * 3 + i], vocab) << "row " << r;
    }
  }
}

}  // namespace
}  // namespace moed
