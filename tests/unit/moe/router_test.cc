// Router: softmax top-k with and without renormalisation, tie order, group-limited and noaux_tc (sigmoid, selection
// bias) routing, capacity and drop accounting.
#include "engine/moe/router.h"

#include <cmath>
#include <vector>

#include "gtest/gtest.h"

namespace moed {
namespace {

RouterSpec Softmax(bool normalize) {
  RouterSpec r;
  r.norm_topk_prob = normalize;
  return r;
}

double Sigmoid(double x) { return 1 / (1 + std::exp(-x)); }

TEST(RouterTest, TopKOfSoftmaxBestFirst) {
  // Two tokens, four experts.
  const std::vector<float> logits = {0.0f, 2.0f, 1.0f, -1.0f,   // token 0
                                     3.0f, 3.0f, 0.5f, 3.5f};   // token 1
  std::vector<int32_t> ex(4);
  std::vector<float> w(4);
  RouteTopK(logits.data(), 2, 4, 2, Softmax(false), nullptr, ex.data(), w.data());
  const double z0 = 1 + std::exp(2.0) + std::exp(1.0) + std::exp(-1.0);
  EXPECT_EQ(ex[0], 1);
  EXPECT_EQ(ex[1], 2);
  EXPECT_NEAR(w[0], std::exp(2.0) / z0, 1e-6);
  EXPECT_NEAR(w[1], std::exp(1.0) / z0, 1e-6);
  EXPECT_EQ(ex[2], 3);
  EXPECT_EQ(ex[3], 0);  // experts 0 and 1 tie: the lower id wins
  RouteTopK(logits.data(), 2, 4, 2, Softmax(true), nullptr, ex.data(), w.data());
  EXPECT_NEAR(w[0] + w[1], 1.0, 1e-6);
  EXPECT_NEAR(w[0], std::exp(2.0) / (std::exp(2.0) + std::exp(1.0)), 1e-6);
  EXPECT_NEAR(w[2], std::exp(0.5) / (std::exp(0.5) + 1), 1e-6);
}

TEST(RouterTest, TopKEqualsAllExperts) {
  const std::vector<float> logits = {0.3f, -0.2f, 0.1f};
  std::vector<int32_t> ex(3);
  std::vector<float> w(3);
  RouteTopK(logits.data(), 1, 3, 3, Softmax(false), nullptr, ex.data(), w.data());
  EXPECT_EQ(ex, (std::vector<int32_t>{0, 2, 1}));
  EXPECT_NEAR(w[0] + w[1] + w[2], 1.0, 1e-6);
}

// DeepSeek-V2 group_limited_greedy: groups ranked by their best softmax score; top-k only inside the kept groups;
// weights are the softmax scores times routed_scaling_factor, never renormalised.
TEST(RouterTest, GroupLimitedGreedyKeepsTheBestGroups) {
  const std::vector<float> logits = {3.0f, 2.95f, 2.96f, -5.0f};  // groups {0, 1} and {2, 3}
  RouterSpec r;
  r.method = TopKMethod::kGroupLimitedGreedy;
  r.num_groups = 2;
  r.topk_groups = 1;
  r.norm_topk_prob = false;
  r.routed_scaling_factor = 2.0f;
  std::vector<int32_t> ex(2);
  std::vector<float> w(2);
  RouteTopK(logits.data(), 1, 4, 2, r, nullptr, ex.data(), w.data());
  EXPECT_EQ(ex, (std::vector<int32_t>{0, 1}));  // greedy would take expert 2 (2.96 > 2.95)
  const double z = std::exp(3.0) + std::exp(2.95) + std::exp(2.96) + std::exp(-5.0);
  EXPECT_NEAR(w[0], 2 * std::exp(3.0) / z, 1e-6);
  EXPECT_NEAR(w[1], 2 * std::exp(2.95) / z, 1e-6);
  r.method = TopKMethod::kGreedy;
  RouteTopK(logits.data(), 1, 4, 2, r, nullptr, ex.data(), w.data());
  EXPECT_EQ(ex, (std::vector<int32_t>{0, 2}));
}

// DeepSeek-V3 noaux_tc: sigmoid scores; groups ranked by the sum of their two best biased scores; the bias chooses
// but never weighs; weights renormalised then scaled.
TEST(RouterTest, NoauxTcRanksGroupsByTopTwoSumAndBiasOnlySelects) {
  const std::vector<float> logits = {2.0f, -3.0f, 1.0f, 1.0f};
  RouterSpec r;
  r.scoring = RouterScoring::kSigmoid;
  r.method = TopKMethod::kNoauxTc;
  r.num_groups = 2;
  r.topk_groups = 1;
  r.norm_topk_prob = false;
  r.routed_scaling_factor = 2.5f;
  r.selection_bias = true;
  std::vector<int32_t> ex(1);
  std::vector<float> w(1);
  const std::vector<float> no_bias(4, 0.0f);
  // Group sums 0.928 vs 1.462: group {2, 3} wins although expert 0 has the best score; 2 and 3 tie → 2.
  RouteTopK(logits.data(), 1, 4, 1, r, no_bias.data(), ex.data(), w.data());
  EXPECT_EQ(ex[0], 2);
  EXPECT_NEAR(w[0], 2.5 * Sigmoid(1.0), 1e-6);
  // A bias of -1 on expert 3 drops group {2, 3} to 0.462: expert 0, weighed by its unbiased score.
  const std::vector<float> bias = {0.0f, 0.0f, 0.0f, -1.0f};
  RouteTopK(logits.data(), 1, 4, 1, r, bias.data(), ex.data(), w.data());
  EXPECT_EQ(ex[0], 0);
  EXPECT_NEAR(w[0], 2.5 * Sigmoid(2.0), 1e-6);
  r.norm_topk_prob = true;  // one expert renormalised to 1, then scaled
  RouteTopK(logits.data(), 1, 4, 1, r, bias.data(), ex.data(), w.data());
  EXPECT_NEAR(w[0], 2.5, 1e-6);
}

TEST(RouterTest, CapacityFormula) {
  EXPECT_EQ(ExpertCapacity(0.0f, 22, 8), 22);     // dropless
  EXPECT_EQ(ExpertCapacity(1.0f, 16, 8), 2);
  EXPECT_EQ(ExpertCapacity(1.0f, 17, 8), 3);      // ceil
  EXPECT_EQ(ExpertCapacity(1.25f, 2, 8), 1);
  EXPECT_EQ(ExpertCapacity(0.5f, 22, 8), 2);
}

TEST(RouterTest, CapacityDropsLaterAssignmentsInTokenThenSlotOrder) {
  // 3 tokens × top-2 over 3 experts, capacity 2: expert 0 is chosen by all three tokens.
  const std::vector<int32_t> ex = {0, 1,   // token 0
                                   2, 0,   // token 1
                                   0, 2};  // token 2
  std::vector<uint8_t> kept(6);
  std::vector<int64_t> routed(3, 0), dropped(3, 0);
  EXPECT_EQ(ApplyCapacity(ex.data(), 6, 3, 2, kept.data(), routed.data(), dropped.data()), 1);
  EXPECT_EQ(kept, (std::vector<uint8_t>{1, 1, 1, 1, 0, 1}));
  EXPECT_EQ(routed, (std::vector<int64_t>{3, 1, 2}));
  EXPECT_EQ(dropped, (std::vector<int64_t>{1, 0, 0}));
  // Counters accumulate across calls (the backend sums over a step's layers in place).
  EXPECT_EQ(ApplyCapacity(ex.data(), 6, 3, 1, kept.data(), routed.data(), dropped.data()), 3);
  EXPECT_EQ(kept, (std::vector<uint8_t>{1, 1, 1, 0, 0, 0}));
  EXPECT_EQ(routed, (std::vector<int64_t>{6, 2, 4}));
  EXPECT_EQ(dropped, (std::vector<int64_t>{3, 0, 1}));
}

}  // namespace
}  // namespace moed
