// Cache policies on their own: LRU order, LFU decay, load-aware hot-set rebuilds, and the factory's errors.
#include <vector>

#include "engine/cache/cache_policy.h"
#include "engine/cache/lfu_policy.h"
#include "engine/cache/load_aware_policy.h"
#include "engine/cache/lru_policy.h"
#include "gtest/gtest.h"

namespace moed::cache {
namespace {

TEST(LruPolicyTest, EvictsLeastRecentlyUsedFirst) {
  LruPolicy p(2, 4);
  const std::vector<ExpertKey> keys = {{0, 0}, {0, 1}, {1, 2}, {1, 3}};
  for (const ExpertKey& k : keys) p.OnInsert(k, 0);
  p.OnAccess({0, 0}, 1);  // order of last use now: (0,1) (1,2) (1,3) (0,0)
  std::vector<ExpertKey> candidates = keys;
  std::vector<ExpertKey> evicted;
  while (!candidates.empty()) {
    const size_t v = p.ChooseVictim(candidates, 2);
    evicted.push_back(candidates[v]);
    p.OnEvict(candidates[v]);
    candidates.erase(candidates.begin() + v);
  }
  EXPECT_EQ(evicted, (std::vector<ExpertKey>{{0, 1}, {1, 2}, {1, 3}, {0, 0}}));
}

TEST(LfuPolicyTest, EvictsLeastFrequentAndScoresDecay) {
  LfuPolicy p(1, 3, /*half_life_steps=*/4.0);
  for (int i = 0; i < 4; ++i) p.OnAccess({0, 0}, 0);  // score 4 at step 0
  p.OnAccess({0, 1}, 8);                              // score 1 at step 8
  p.OnAccess({0, 1}, 8);                              // score 2 at step 8
  EXPECT_DOUBLE_EQ(p.Score({0, 0}, 0), 4.0);
  EXPECT_DOUBLE_EQ(p.Score({0, 0}, 4), 2.0);  // one half-life
  EXPECT_DOUBLE_EQ(p.Score({0, 0}, 8), 1.0);  // two
  EXPECT_DOUBLE_EQ(p.Score({0, 1}, 8), 2.0);
  const std::vector<ExpertKey> c = {{0, 0}, {0, 1}};
  // At step 0-ish expert 0 is the frequent one; by step 8 its old accesses have decayed below expert 1's.
  EXPECT_EQ(c[p.ChooseVictim(c, 8)], (ExpertKey{0, 0}));
  // Accessing expert 0 again at step 8 lifts it to 2.0: a tie, broken by the least recent use (expert 1).
  p.OnAccess({0, 0}, 8);
  EXPECT_DOUBLE_EQ(p.Score({0, 0}, 8), 2.0);
  EXPECT_EQ(c[p.ChooseVictim(c, 8)], (ExpertKey{0, 1}));
  // Never accessed → score 0, evicted before anything accessed.
  const std::vector<ExpertKey> c3 = {{0, 0}, {0, 2}, {0, 1}};
  EXPECT_EQ(c3[p.ChooseVictim(c3, 100)], (ExpertKey{0, 2}));
}

TEST(LoadAwarePolicyTest, HotSetRebuiltEveryNStepsFromRouting) {
  LoadAwarePolicy p(2, 4, /*rebuild_every_steps=*/2);
  const std::vector<int64_t> layer0 = {5, 0, 1, 9}, layer1 = {0, 7, 0, 2};
  p.OnStep(0);
  p.OnRouting(0, layer0, 0);
  p.OnRouting(1, layer1, 0);
  p.OnStep(1);
  EXPECT_EQ(p.rebuilds(), 0);
  EXPECT_EQ(p.Load({0, 3}), 0) << "counts reach the snapshot only at a rebuild";
  p.OnStep(2);
  EXPECT_EQ(p.rebuilds(), 1);
  EXPECT_EQ(p.Load({0, 3}), 9);
  EXPECT_EQ(p.HotSet(3), (std::vector<ExpertKey>{{0, 3}, {1, 1}, {0, 0}}));
  // Victim: the coldest resident by snapshot load.
  const std::vector<ExpertKey> c = {{0, 3}, {1, 1}, {0, 2}, {0, 0}};
  EXPECT_EQ(c[p.ChooseVictim(c, 2)], (ExpertKey{0, 2}));
  // Routing shifts: expert (0, 2) becomes the hottest after the next rebuild, not before.
  p.OnRouting(0, std::vector<int64_t>{0, 0, 50, 0}, 2);
  p.OnStep(3);
  EXPECT_EQ(c[p.ChooseVictim(c, 3)], (ExpertKey{0, 2}));
  p.OnStep(4);
  EXPECT_EQ(p.rebuilds(), 2);
  EXPECT_EQ(p.HotSet(1), (std::vector<ExpertKey>{{0, 2}}));
  EXPECT_EQ(c[p.ChooseVictim(c, 4)], (ExpertKey{0, 0}));
}

TEST(LoadAwarePolicyTest, TiesFallBackToLeastRecentlyUsed) {
  LoadAwarePolicy p(1, 3, 4);
  p.OnInsert({0, 2}, 0);
  p.OnInsert({0, 0}, 0);
  p.OnInsert({0, 1}, 0);
  p.OnAccess({0, 2}, 0);
  const std::vector<ExpertKey> c = {{0, 0}, {0, 1}, {0, 2}};
  EXPECT_EQ(c[p.ChooseVictim(c, 0)], (ExpertKey{0, 0}));
}

TEST(PolicyFactoryTest, NamesAndErrors) {
  for (const char* name : {"lru", "lfu", "load-aware"}) {
    auto p = CreateCachePolicy(name, {}, 2, 8);
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_EQ((*p)->name(), name);
  }
  auto bad = CreateCachePolicy("fifo", {}, 2, 8);
  ASSERT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("'fifo'"), std::string::npos);
  EXPECT_NE(bad.status().message().find("lru, lfu, load-aware"), std::string::npos);
  PolicyParams params;
  params.lfu_half_life_steps = 0;
  EXPECT_EQ(CreateCachePolicy("lfu", params, 2, 8).status().code(), absl::StatusCode::kInvalidArgument);
  params = {};
  params.rebuild_every_steps = 0;
  EXPECT_EQ(CreateCachePolicy("load-aware", params, 2, 8).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace moed::cache
