// Grouped routed-expert execution equals running each (token, expert) pair alone, with drops omitted,
// whatever the thread count.
#include "engine/backend/cpu/experts.h"

#include <cmath>
#include <random>

#include "gtest/gtest.h"

namespace moed::cpu {
namespace {

std::vector<float> Random(size_t n, std::mt19937& rng) {
  std::normal_distribution<float> d(0, 0.3f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

TEST(ExpertsTest, GroupedEqualsPerTokenWithDrops) {
  const int hidden = 24, width = 20, num_experts = 5, top_k = 2, tokens = 7;
  std::mt19937 rng(3);
  std::vector<CpuFfn> experts(num_experts);
  for (CpuFfn& e : experts) {
    e.width = width;
    e.gate = Random(width * hidden, rng);
    e.up = Random(width * hidden, rng);
    e.down = Random(hidden * width, rng);
  }
  const std::vector<float> x = Random(tokens * hidden, rng);
  std::vector<int32_t> ids(tokens * top_k);
  std::vector<float> w(tokens * top_k);
  std::vector<uint8_t> kept(tokens * top_k);
  for (int a = 0; a < tokens * top_k; ++a) {
    ids[a] = (a * 3 + a / top_k) % num_experts;
    if (a % top_k == 1 && ids[a] == ids[a - 1]) ids[a] = (ids[a] + 1) % num_experts;
    w[a] = 0.1f + 0.05f * a;
    kept[a] = a % 5 != 4;  // drop a few
  }
  std::vector<float> want(tokens * hidden, 0.0f), y(hidden);
  for (int a = 0; a < tokens * top_k; ++a) {
    if (!kept[a]) continue;
    RunFfn(experts[ids[a]], x.data() + (a / top_k) * hidden, 1, hidden, y.data(), nullptr);
    for (int j = 0; j < hidden; ++j) want[(a / top_k) * hidden + j] += w[a] * y[j];
  }
  ThreadPool one(1), two(2);
  std::vector<float> got1(tokens * hidden, 0.0f), got2(tokens * hidden, 0.0f);
  RunRoutedExperts(experts, x.data(), tokens, hidden, ids.data(), w.data(), kept.data(), top_k, got1.data(), &one);
  RunRoutedExperts(experts, x.data(), tokens, hidden, ids.data(), w.data(), kept.data(), top_k, got2.data(), &two);
  for (int i = 0; i < tokens * hidden; ++i) {
    ASSERT_NEAR(got1[i], want[i], 1e-5) << i;
    ASSERT_EQ(got1[i], got2[i]) << "thread count changed the result at " << i;
  }
}

}  // namespace
}  // namespace moed::cpu
