// WavePlanner (the wave plan both backends run): hits pinned before misses, id-ordered waves that cover every
// needed expert exactly once, pins released between waves, hit/miss counts, errors leave nothing pinned; prefetch
// order by votes.
#include <memory>
#include <vector>

#include "engine/cache/expert_cache.h"
#include "engine/cache/memcpy_transfer.h"
#include "engine/cache/wave_planner.h"
#include "gtest/gtest.h"

namespace moed::cache {
namespace {

constexpr int kExperts = 8;

// A real slot pool over one layer of kExperts experts, 4 floats each (expert e's floats all equal e).
struct Fixture {
  std::vector<std::vector<float>> data;
  std::unique_ptr<MemcpyTransfer> transfer;
  std::unique_ptr<ExpertCache> cache;
  explicit Fixture(int slots, int missing_expert = -1) {
    std::vector<std::vector<HostPart>> parts(kExperts);
    for (int e = 0; e < kExperts; ++e) data.emplace_back(4, static_cast<float>(e));
    for (int e = 0; e < kExperts; ++e) {
      if (e != missing_expert) parts[e] = {{data[e].data(), 4}};
    }
    transfer = std::move(MemcpyTransfer::Create(kExperts, parts, slots)).value();
    cache = std::move(ExpertCache::Create({1, kExperts, slots, "lru", {}}, transfer.get())).value();
    cache->BeginStep();
  }
};

std::vector<int64_t> Used(std::initializer_list<int> experts) {
  std::vector<int64_t> used(kExperts, 0);
  for (int e : experts) used[e] += 1;
  return used;
}

TEST(WavePlannerTest, LayerThatFitsPinsHitsFirstInOneWave) {
  Fixture f(4);
  {
    WavePlanner warm(f.cache.get(), 0, Used({2, 5}));  // 2 and 5 become resident
    while (*warm.Next() != nullptr) {
    }
  }
  f.cache->TakeStepStats();
  WavePlanner planner(f.cache.get(), 0, Used({1, 2, 5, 6}));
  auto wave = planner.Next();
  ASSERT_TRUE(wave.ok()) << wave.status();
  ASSERT_NE(*wave, nullptr);
  const Wave& w = **wave;
  EXPECT_TRUE(w.whole_layer);
  EXPECT_EQ(w.first_expert, 1);
  EXPECT_EQ(w.last_expert, 6);
  ASSERT_EQ(w.experts.size(), 4u);
  const int order[] = {2, 5, 1, 6};  // hits in id order, then misses in id order
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(w.experts[i].expert, order[i]);
    EXPECT_EQ(w.experts[i].hit, i < 2);
    // The slot holds the expert's weights.
    EXPECT_EQ(f.transfer->slot_data(w.experts[i].slot)[0], static_cast<float>(order[i]));
  }
  EXPECT_EQ(f.cache->pinned(), 4);
  EXPECT_EQ(*planner.Next(), nullptr);
  EXPECT_EQ(f.cache->pinned(), 0);
  const ExpertCacheStats stats = f.cache->TakeStepStats();
  EXPECT_EQ(stats.TotalHits(), 2);
  EXPECT_EQ(stats.TotalMisses(), 2);
}

TEST(WavePlannerTest, LayerLargerThanTheCacheRunsIdOrderedWaves) {
  Fixture f(3);
  WavePlanner planner(f.cache.get(), 0, Used({0, 1, 3, 4, 6, 7, 7}));
  std::vector<int> seen;
  int last = -1, waves = 0;
  while (true) {
    auto wave = planner.Next();
    ASSERT_TRUE(wave.ok()) << wave.status();
    if (*wave == nullptr) break;
    const Wave& w = **wave;
    ++waves;
    EXPECT_FALSE(w.whole_layer);
    EXPECT_GT(w.first_expert, last) << "waves come in increasing id ranges";
    EXPECT_EQ(f.cache->pinned(), static_cast<int>(w.experts.size())) << "only this wave is pinned";
    for (const PlannedExpert& p : w.experts) {
      EXPECT_TRUE(w.Covers(p.expert));
      EXPECT_FALSE(p.hit);
      EXPECT_EQ(f.transfer->slot_data(p.slot)[0], static_cast<float>(p.expert));
      seen.push_back(p.expert);
    }
    last = w.last_expert;
  }
  EXPECT_EQ(waves, 2);  // {0,1,3} then {4,6,7}
  EXPECT_EQ(seen, (std::vector<int>{0, 1, 3, 4, 6, 7}));
  EXPECT_EQ(f.cache->pinned(), 0);
  const ExpertCacheStats stats = f.cache->TakeStepStats();
  EXPECT_EQ(stats.TotalMisses(), 6);
  EXPECT_EQ(stats.TotalMissAssignments(), 7) << "expert 7 serves two assignments";
}

TEST(WavePlannerTest, NothingNeededIsNoWave) {
  Fixture f(2);
  WavePlanner planner(f.cache.get(), 0, std::vector<int64_t>(kExperts, 0));
  EXPECT_EQ(*planner.Next(), nullptr);
}

TEST(WavePlannerTest, FailedLoadLeavesNothingPinned) {
  Fixture f(4, /*missing_expert=*/3);
  WavePlanner planner(f.cache.get(), 0, Used({1, 3, 5}));
  auto wave = planner.Next();
  EXPECT_EQ(wave.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(f.cache->pinned(), 0);
  EXPECT_FALSE(f.cache->map().SlotOf({0, 3}).has_value()) << "a failed load leaves no resident expert";
  EXPECT_EQ(*planner.Next(), nullptr) << "a failed plan ends";
}

TEST(WavePlannerTest, PrefetchOrderIsByVotesThenId) {
  const std::vector<int32_t> predicted = {5, 2, 5, 7, 2, 5, 0};
  EXPECT_EQ(PrefetchOrder(predicted, kExperts), (std::vector<int>{5, 2, 0, 7}));
  EXPECT_TRUE(PrefetchOrder({}, kExperts).empty());
}

TEST(WavePlannerTest, PrefetchStopsAtCapacityAndUnpins) {
  Fixture f(2);
  auto issued = PrefetchExperts(f.cache.get(), 0, std::vector<int>{5, 2, 0});
  ASSERT_TRUE(issued.ok()) << issued.status();
  EXPECT_EQ(*issued, 2) << "two slots: the third is not admitted while the first two are pinned";
  EXPECT_EQ(f.cache->pinned(), 0);
  EXPECT_TRUE(f.cache->map().SlotOf({0, 5}).has_value());
  EXPECT_TRUE(f.cache->map().SlotOf({0, 2}).has_value());
  EXPECT_EQ(*PrefetchExperts(f.cache.get(), 0, std::vector<int>{5}), 0) << "resident: nothing to load";
}

}  // namespace
}  // namespace moed::cache
