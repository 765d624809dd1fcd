// Load balance: Gini, entropy, max/mean and CV on hand-computed distributions; the bucketed step window.
#include "engine/moe/load_balance.h"

#include <cmath>
#include <vector>

#include "gtest/gtest.h"

namespace moed {
namespace {

constexpr double kEps = 1e-12;

TEST(LoadBalanceTest, UniformIsPerfectlyBalanced) {
  const LoadBalance b = ComputeLoadBalance(std::vector<int64_t>{5, 5, 5, 5});
  EXPECT_NEAR(b.gini, 0.0, kEps);
  EXPECT_NEAR(b.entropy, 1.0, kEps);
  EXPECT_NEAR(b.max_over_mean, 1.0, kEps);
  EXPECT_NEAR(b.cv, 0.0, kEps);
  EXPECT_EQ(b.assignments, 20);
}

TEST(LoadBalanceTest, OneHotIsTheWorstCase) {
  const LoadBalance b = ComputeLoadBalance(std::vector<int64_t>{0, 0, 8, 0});
  EXPECT_NEAR(b.gini, 3.0 / 4.0, kEps);  // (n-1)/n
  EXPECT_NEAR(b.entropy, 0.0, kEps);
  EXPECT_NEAR(b.max_over_mean, 4.0, kEps);  // n
  EXPECT_NEAR(b.cv, std::sqrt(3.0), kEps);  // sqrt(n-1)
}

TEST(LoadBalanceTest, KnownSkew) {
  // Loads 1,1,2,4: mean 2; sum over unordered pairs of |xi - xj| = 10, so Gini = 2·10 / (2·16·2) = 0.3125;
  // p = 1/8,1/8,1/4,1/2 gives H = 1.75 ln 2, normalized by ln 4: 0.875; deviations -1,-1,0,2: var 1.5.
  const LoadBalance b = ComputeLoadBalance(std::vector<int64_t>{4, 1, 2, 1});
  EXPECT_NEAR(b.gini, 0.3125, kEps);
  EXPECT_NEAR(b.entropy, 0.875, kEps);
  EXPECT_NEAR(b.max_over_mean, 2.0, kEps);
  EXPECT_NEAR(b.cv, std::sqrt(1.5) / 2.0, kEps);
}

TEST(LoadBalanceTest, GiniMatchesThePairwiseDefinition) {
  const std::vector<int64_t> x = {7, 0, 3, 12, 1, 1, 9, 4};
  double pairs = 0;
  double sum = 0;
  for (int64_t a : x) {
    sum += static_cast<double>(a);
    for (int64_t c : x) pairs += std::abs(static_cast<double>(a - c));
  }
  const double n = static_cast<double>(x.size());
  EXPECT_NEAR(ComputeLoadBalance(x).gini, pairs / (2 * n * n * (sum / n)), kEps);
}

TEST(LoadBalanceTest, NoAssignmentsIsAllZeroAndSaysSo) {
  for (const std::vector<int64_t>& x : {std::vector<int64_t>{0, 0, 0}, std::vector<int64_t>{}}) {
    const LoadBalance b = ComputeLoadBalance(x);
    EXPECT_EQ(b.assignments, 0);
    EXPECT_EQ(b.gini, 0.0);
    EXPECT_EQ(b.entropy, 0.0);
    EXPECT_EQ(b.max_over_mean, 0.0);
    EXPECT_EQ(b.cv, 0.0);
  }
}

TEST(LoadBalanceTest, SingleExpertAndNegativeCounts) {
  const LoadBalance one = ComputeLoadBalance(std::vector<int64_t>{3});
  EXPECT_NEAR(one.entropy, 1.0, kEps);
  EXPECT_NEAR(one.gini, 0.0, kEps);
  const LoadBalance neg = ComputeLoadBalance(std::vector<int64_t>{-5, 2, 2});
  EXPECT_EQ(neg.assignments, 4);
  EXPECT_NEAR(neg.max_over_mean, 1.5, kEps);
}

TEST(StepWindowTest, CoversTheLastBucketsAndIgnoresIdleSteps) {
  StepWindow w(/*num_cells=*/2, /*window_steps=*/4, /*bucket_steps=*/2);
  w.Add(std::vector<int64_t>{1, 0});   // step 1
  w.Add(std::vector<int64_t>{0, 0});   // idle: ignored
  w.Add(std::vector<int64_t>{2, 0});   // step 2 (bucket A full)
  w.Add(std::vector<int64_t>{0, 4});   // step 3
  w.Add(std::vector<int64_t>{0, 8});   // step 4 (bucket B full; window = A + B)
  EXPECT_EQ(w.steps(), 4);
  EXPECT_EQ(w.sums(), (std::vector<int64_t>{3, 12}));
  w.Add(std::vector<int64_t>{16, 0});  // step 5: current bucket, A still in
  EXPECT_EQ(w.steps(), 5);
  EXPECT_EQ(w.sums(), (std::vector<int64_t>{19, 12}));
  w.Add(std::vector<int64_t>{32, 0});  // step 6: bucket C full, A leaves
  EXPECT_EQ(w.steps(), 4);
  EXPECT_EQ(w.sums(), (std::vector<int64_t>{48, 12}));
  w.Add(std::vector<int64_t>{1, 2, 3});  // wrong size: ignored
  EXPECT_EQ(w.steps(), 4);
}

TEST(StepWindowTest, MatchesABruteForceSumOverManySteps) {
  constexpr int kWindow = 10;
  constexpr int kBucket = 5;
  StepWindow w(1, kWindow, kBucket);
  std::vector<int64_t> history;
  for (int s = 1; s <= 57; ++s) {
    history.push_back(s * s % 7 + 1);
    w.Add(std::vector<int64_t>{history.back()});
    // Covered: full buckets of the last kWindow steps before the current partial bucket, plus that bucket.
    const int partial = s % kBucket;
    const int covered = std::min<int>(s, kWindow + partial);
    int64_t expected = 0;
    for (int i = s - covered; i < s; ++i) expected += history[i];
    ASSERT_EQ(w.steps(), covered) << "step " << s;
    ASSERT_EQ(w.sums()[0], expected) << "step " << s;
  }
}

}  // namespace
}  // namespace moed
