// Router: softmax top-k with and without renormalisation, tie order, capacity and drop accounting.
#include "engine/moe/router.h"

#include <cmath>
#include <vector>

#include "gtest/gtest.h"

namespace moed {
namespace {

TEST(RouterTest, TopKOfSoftmaxBestFirst) {
  // Two tokens, four experts.
  const std::vector<float> logits = {0.0f, 2.0f, 1.0f, -1.0f,   // token 0
                                     3.0f, 3.0f, 0.5f, 3.5f};   // token 1
  std::vector<int32_t> ex(4);
  std::vector<float> w(4);
  RouteTopK(logits.data(), 2, 4, 2, /*normalize=*/false, ex.data(), w.data());
  const double z0 = 1 + std::exp(2.0) + std::exp(1.0) + std::exp(-1.0);
  EXPECT_EQ(ex[0], 1);
  EXPECT_EQ(ex[1], 2);
  EXPECT_NEAR(w[0], std::exp(2.0) / z0, 1e-6);
  EXPECT_NEAR(w[1], std::exp(1.0) / z0, 1e-6);
  EXPECT_EQ(ex[2], 3);
  EXPECT_EQ(ex[3], 0);  // experts 0 and 1 tie: the lower id wins
  RouteTopK(logits.data(), 2, 4, 2, /*normalize=*/true, ex.data(), w.data());
  EXPECT_NEAR(w[0] + w[1], 1.0, 1e-6);
  EXPECT_NEAR(w[0], std::exp(2.0) / (std::exp(2.0) + std::exp(1.0)), 1e-6);
  EXPECT_NEAR(w[2], std::exp(0.5) / (std::exp(0.5) + 1), 1e-6);
}

TEST(RouterTest, TopKEqualsAllExperts) {
  const std::vector<float> logits = {0.3f, -0.2f, 0.1f};
  std::vector<int32_t> ex(3);
  std::vector<float> w(3);
  RouteTopK(logits.data(), 1, 3, 3, false, ex.data(), w.data());
  EXPECT_EQ(ex, (std::vector<int32_t>{0, 2, 1}));
  EXPECT_NEAR(w[0] + w[1] + w[2], 1.0, 1e-6);
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
