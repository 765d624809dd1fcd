// SequenceResult::token_experts / token_weights on the CPU backend: each token's experts and router weights per
// layer, consistent with the per-sequence counts and the same whether a prompt runs as one chunk or token by token.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "engine/backend/cpu/cpu_backend.h"
#include "gtest/gtest.h"
#include "tests/unit/backend/random_model.h"

namespace moed {
namespace {

using test_models::MakeRandomModel;
using test_models::RandomModelOptions;

constexpr int kBlock = 4;

std::vector<RandomModelOptions> Families() {
  std::vector<RandomModelOptions> v(4);
  v[0].family = Family::kMixtral;
  v[1].family = Family::kQwen2Moe;  // shared expert, top-4
  v[1].shared_ffn = 40;
  v[1].top_k = 4;
  v[2].family = Family::kOlmoe;
  v[3].family = Family::kQwen3Moe;  // a dense first layer
  v[3].dense_first_layer = true;
  return v;
}

// Runs `ids` in chunks of `chunk` tokens with per-token routing; returns the tokens' experts and weights
// (tokens, layers, top_k) back to back, and the per-sequence counts summed over the chunks.
struct Routing {
  std::vector<int32_t> experts;
  std::vector<float> weights;
  std::vector<int32_t> counts;
};
Routing RunWithTokenRouting(Backend& b, const std::vector<int32_t>& ids, int chunk) {
  Routing r;
  const ModelSpec& s = b.spec();
  r.counts.assign(static_cast<size_t>(s.num_layers) * s.num_experts, 0);
  for (int start = 0; start < static_cast<int>(ids.size()); start += chunk) {
    const int len = std::min<int>(chunk, static_cast<int>(ids.size()) - start);
    StepBatch batch;
    batch.token_ids.assign(ids.begin() + start, ids.begin() + start + len);
    SequenceStep q;
    q.num_tokens = len;
    q.start_pos = start;
    q.block_table = {0, 1, 2};
    q.want_routing = true;
    q.want_token_routing = true;
    batch.seqs = {q};
    StepOutput out;
    EXPECT_TRUE(b.Step(batch, &out).ok());
    const SequenceResult& res = out.results[0];
    EXPECT_EQ(res.token_experts.size(), static_cast<size_t>(len) * s.num_layers * s.top_k);
    EXPECT_EQ(res.token_weights.size(), res.token_experts.size());
    r.experts.insert(r.experts.end(), res.token_experts.begin(), res.token_experts.end());
    r.weights.insert(r.weights.end(), res.token_weights.begin(), res.token_weights.end());
    for (size_t i = 0; i < r.counts.size(); ++i) r.counts[i] += res.routing[i];
  }
  return r;
}

TEST(TokenRoutingTest, PerTokenExpertsMatchCountsAndTokenByTokenRuns) {
  const std::vector<int32_t> prompt = {1, 17, 5, 90, 33, 33, 4, 61, 2, 77, 12};
  for (const RandomModelOptions& o : Families()) {
    auto made = CreateBackend("cpu", MakeRandomModel(o), {});
    ASSERT_TRUE(made.ok()) << made.status();
    Backend& b = **made;
    ASSERT_TRUE(b.InitKvCache({8, kBlock}).ok());
    const ModelSpec& s = b.spec();
    const int L = s.num_layers, k = s.top_k, E = s.num_experts;
    const Routing whole = RunWithTokenRouting(b, prompt, 64);
    const Routing single = RunWithTokenRouting(b, prompt, 1);
    // The per-token lists add up to the per-sequence counts; dense layers hold -1 and weight 0.
    std::vector<int32_t> counted(static_cast<size_t>(L) * E, 0);
    for (size_t t = 0; t < prompt.size(); ++t) {
      for (int l = 0; l < L; ++l) {
        for (int j = 0; j < k; ++j) {
          const size_t at = (t * L + l) * k + j;
          const int32_t e = whole.experts[at];
          if (!s.layer_is_moe[l]) {
            EXPECT_EQ(e, -1);
            EXPECT_EQ(whole.weights[at], 0.0f);
            continue;
          }
          ASSERT_GE(e, 0);
          ASSERT_LT(e, E);
          EXPECT_GT(whole.weights[at], 0.0f);
          ++counted[static_cast<size_t>(l) * E + e];
        }
      }
    }
    EXPECT_EQ(counted, whole.counts);
    // One chunk or token by token: the same experts; weights within the fp32 rounding of the two paths.
    EXPECT_EQ(whole.experts, single.experts);
    ASSERT_EQ(whole.weights.size(), single.weights.size());
    for (size_t i = 0; i < whole.weights.size(); ++i) EXPECT_NEAR(whole.weights[i], single.weights[i], 1e-6) << i;
  }
}

TEST(TokenRoutingTest, OnlySequencesThatAskGetIt) {
  RandomModelOptions o;
  auto made = CreateBackend("cpu", MakeRandomModel(o), {});
  ASSERT_TRUE(made.ok());
  Backend& b = **made;
  ASSERT_TRUE(b.InitKvCache({8, kBlock}).ok());
  StepBatch batch;
  batch.token_ids = {3, 4, 5, 9};
  SequenceStep a, c;
  a.num_tokens = 3;
  a.block_table = {0};
  a.want_token_routing = true;
  c.seq_id = 1;
  c.token_offset = 3;
  c.num_tokens = 1;
  c.block_table = {1};
  batch.seqs = {a, c};
  StepOutput out;
  ASSERT_TRUE(b.Step(batch, &out).ok());
  EXPECT_EQ(out.results[0].token_experts.size(), 3u * b.spec().num_layers * b.spec().top_k);
  EXPECT_TRUE(out.results[1].token_experts.empty());
  EXPECT_TRUE(out.results[1].token_weights.empty());
}

}  // namespace
}  // namespace moed
