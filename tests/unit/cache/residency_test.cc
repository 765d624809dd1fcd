// ResidencyMap and ExpertCache: pinning under eviction pressure, prefetch used/wasted accounting, counters that add
// up, and the memcpy slot pool's copies.
#include <memory>
#include <random>
#include <vector>

#include "engine/cache/expert_cache.h"
#include "engine/cache/lru_policy.h"
#include "engine/cache/memcpy_transfer.h"
#include "engine/cache/residency_map.h"
#include "gtest/gtest.h"

namespace moed::cache {
namespace {

ResidencyMap LruMap(int layers, int experts, int slots) {
  return ResidencyMap(layers, experts, slots, std::make_unique<LruPolicy>(layers, experts));
}

TEST(ResidencyMapTest, PinnedExpertsAreNeverEvicted) {
  ResidencyMap m = LruMap(1, 8, 3);
  m.BeginStep();
  for (int e : {0, 1, 2}) ASSERT_TRUE(m.Acquire({0, e}).ok());
  EXPECT_EQ(m.pinned(), 3);
  // Every slot pinned: one more is refused, and nothing changes.
  EXPECT_FALSE(m.CanAdmit({0, 3}));
  auto refused = m.Acquire({0, 3});
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(refused.status().message().find("all 3 slots are pinned"), std::string::npos);
  EXPECT_EQ(m.resident(), 3);
  EXPECT_TRUE(m.CanAdmit({0, 1})) << "a resident expert can always be pinned again";
  // Expert 0 is the least recently used, but pinned: the victim is expert 1 (the LRU among the unpinned).
  m.Unpin({0, 1});
  m.Unpin({0, 2});
  auto g = m.Acquire({0, 3});
  ASSERT_TRUE(g.ok());
  ASSERT_TRUE(g->evicted.has_value());
  EXPECT_EQ(*g->evicted, (ExpertKey{0, 1}));
  EXPECT_TRUE(g->load);
  EXPECT_TRUE(m.SlotOf({0, 0}).has_value());
  EXPECT_FALSE(m.SlotOf({0, 1}).has_value());
  EXPECT_EQ(m.SlotOf({0, 3}), g->slot);
  // Under pressure from many more experts, the pinned ones stay.
  for (int round = 0; round < 20; ++round) {
    const int e = 4 + round % 4;
    auto r = m.Acquire({0, e});
    ASSERT_TRUE(r.ok()) << r.status();
    m.Unpin({0, e});
    ASSERT_TRUE(m.SlotOf({0, 0}).has_value());
    ASSERT_TRUE(m.SlotOf({0, 3}).has_value());
  }
  const ExpertCacheStats c = m.TakeCounters();
  EXPECT_EQ(c.hits[0], 0);
  EXPECT_EQ(c.misses[0], 4 + 20);
  EXPECT_EQ(c.evictions[0], 1 + 20);  // each round evicts the one unpinned slot's expert
  EXPECT_EQ(c.resident_experts, 3);
  EXPECT_EQ(c.capacity_experts, 3);
}

TEST(ResidencyMapTest, KeysOutsideTheTableAreRejected) {
  ResidencyMap m = LruMap(2, 4, 2);
  EXPECT_EQ(m.Acquire({2, 0}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(m.Acquire({0, -1}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(m.Prefetch({0, 4}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ResidencyMapTest, PrefetchUsedAndWastedAccounting) {
  ResidencyMap m = LruMap(2, 4, 2);
  m.BeginStep();
  auto p1 = m.Prefetch({1, 0});
  auto p2 = m.Prefetch({1, 1});
  ASSERT_TRUE(p1.ok() && p2.ok());
  EXPECT_TRUE(p1->load && p2->load);
  // Both slots pinned by the prefetch: a third prefetch is refused.
  EXPECT_EQ(m.Prefetch({1, 2}).status().code(), absl::StatusCode::kResourceExhausted);
  m.Unpin({1, 0});
  m.Unpin({1, 1});
  // A prefetch of a resident expert does nothing.
  auto again = m.Prefetch({1, 0});
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->load);
  EXPECT_EQ(m.pinned(), 0);
  // (1, 0) is used: a hit that counts as a used prefetch (serving 5 assignments).
  ASSERT_TRUE(m.Acquire({1, 0}, 5).ok());
  m.Unpin({1, 0});
  // (1, 1) is evicted unused by a miss: wasted.
  auto miss = m.Acquire({1, 3}, 4);
  ASSERT_TRUE(miss.ok());
  EXPECT_EQ(*miss->evicted, (ExpertKey{1, 1}));
  m.Unpin({1, 3});
  // A second access of (1, 0) is an ordinary hit, not another used prefetch.
  ASSERT_TRUE(m.Acquire({1, 0}).ok());
  m.Unpin({1, 0});
  const ExpertCacheStats c = m.TakeCounters();
  EXPECT_EQ(c.prefetch_issued[1], 2);
  EXPECT_EQ(c.prefetch_used[1], 1);
  EXPECT_EQ(c.prefetch_wasted[1], 1);
  EXPECT_EQ(c.hits[1], 2);
  EXPECT_EQ(c.misses[1], 1);
  EXPECT_EQ(c.hit_assignments[1], 5 + 1);  // the second access of (1, 0) used the default of one assignment
  EXPECT_EQ(c.miss_assignments[1], 4);
  EXPECT_EQ(c.evictions[1], 1);
  EXPECT_EQ(c.hits[0] + c.misses[0], 0);
  // Taking the counters resets them.
  const ExpertCacheStats next = m.TakeCounters();
  EXPECT_EQ(next.TotalHits() + next.TotalMisses() + next.TotalPrefetchIssued(), 0);
}

TEST(ResidencyMapTest, HitsPlusMissesEqualAccessesUnderRandomTraffic) {
  std::mt19937 rng(5);
  ResidencyMap m = LruMap(3, 6, 5);
  int64_t accesses = 0, prefetches = 0;
  std::vector<int64_t> per_layer(3, 0);
  ExpertCacheStats total;
  for (int step = 0; step < 200; ++step) {
    m.BeginStep();
    std::vector<ExpertKey> pinned;
    for (int i = 0; i < 3; ++i) {
      const ExpertKey k{static_cast<int32_t>(rng() % 3), static_cast<int32_t>(rng() % 6)};
      if (m.IsPinned(k) || !m.CanAdmit(k)) continue;
      if (rng() % 4 == 0) {
        auto g = m.Prefetch(k);
        ASSERT_TRUE(g.ok());
        if (g->load) {
          ++prefetches;
          pinned.push_back(k);
        }
        continue;
      }
      ASSERT_TRUE(m.Acquire(k).ok());
      ++accesses;
      ++per_layer[k.layer];
      pinned.push_back(k);
    }
    for (const ExpertKey& k : pinned) m.Unpin(k);
    total.Add(m.TakeCounters());
  }
  EXPECT_EQ(total.TotalHits() + total.TotalMisses(), accesses);
  for (int l = 0; l < 3; ++l) EXPECT_EQ(total.hits[l] + total.misses[l], per_layer[l]);
  EXPECT_EQ(total.TotalPrefetchIssued(), prefetches);
  EXPECT_LE(total.TotalPrefetchUsed() + total.TotalPrefetchWasted(), prefetches);
  // Every load (miss or prefetch) fills a slot; all but the resident ones left by eviction.
  EXPECT_EQ(total.TotalMisses() + total.TotalPrefetchIssued() - total.TotalEvictions(), m.resident());
  EXPECT_GT(total.TotalHits(), 0);
  EXPECT_GT(total.TotalEvictions(), 0);
}

// Two layers × three experts of 5 floats each, host values tagging (layer, expert, index).
struct Host {
  std::vector<std::vector<float>> data;
  std::vector<std::vector<HostPart>> parts;
  Host() {
    for (int l = 0; l < 2; ++l) {
      for (int e = 0; e < 3; ++e) {
        std::vector<float> d(5);
        for (int i = 0; i < 5; ++i) d[i] = 100.0f * l + 10.0f * e + i;
        data.push_back(d);
      }
    }
    for (auto& d : data) parts.push_back({{d.data(), 2}, {d.data() + 2, 3}});
  }
};

TEST(MemcpyTransferTest, CopiesPartsBackToBackAndRejectsBadInput) {
  Host host;
  auto t = MemcpyTransfer::Create(3, host.parts, 2);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ((*t)->slot_floats(), 5);
  EXPECT_EQ((*t)->LoadBytes({1, 2}), 20);
  ASSERT_TRUE((*t)->Load({1, 2}, 1).ok());
  for (int i = 0; i < 5; ++i) EXPECT_EQ((*t)->slot_data(1)[i], 120.0f + i);
  EXPECT_EQ((*t)->Load({2, 0}, 0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*t)->Load({0, 0}, 2).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MemcpyTransfer::Create(3, host.parts, 0).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ExpertCacheTest, LoadsMissesAndPrefetchesWithBytesAndTimes) {
  Host host;
  auto t = MemcpyTransfer::Create(3, host.parts, 2);
  ASSERT_TRUE(t.ok());
  ExpertCacheConfig config{2, 3, 2, "lru", {}};
  auto cache = ExpertCache::Create(config, t->get());
  ASSERT_TRUE(cache.ok()) << cache.status();
  ExpertCache& c = **cache;
  c.BeginStep();
  auto slot = c.Acquire({0, 1});
  ASSERT_TRUE(slot.ok());
  EXPECT_EQ((*t)->slot_data(*slot)[4], 14.0f);
  c.Unpin({0, 1});
  auto issued = c.Prefetch({1, 0});
  ASSERT_TRUE(issued.ok());
  EXPECT_TRUE(*issued);
  EXPECT_FALSE(*c.Prefetch({1, 0})) << "already resident";
  EXPECT_EQ(c.pinned(), 1);
  c.EndPrefetch();
  EXPECT_EQ(c.pinned(), 0);
  auto hit = c.Acquire({1, 0});
  ASSERT_TRUE(hit.ok());
  EXPECT_EQ((*t)->slot_data(*hit)[0], 100.0f);
  c.Unpin({1, 0});
  const ExpertCacheStats s = c.TakeStepStats();
  EXPECT_EQ(s.misses[0], 1);
  EXPECT_EQ(s.hits[1], 1);
  EXPECT_EQ(s.prefetch_issued[1], 1);
  EXPECT_EQ(s.prefetch_used[1], 1);
  EXPECT_EQ(s.bytes_transferred, 2 * 20);
  EXPECT_EQ(s.load_durations.size(), 2u);
  EXPECT_GE(s.load_seconds, s.stall_seconds);
  EXPECT_GE(s.stall_seconds, 0.0);
  EXPECT_EQ(s.resident_experts, 2);
  EXPECT_EQ(s.capacity_experts, 2);

  ExpertCacheConfig bad = config;
  bad.policy = "mru";
  EXPECT_EQ(ExpertCache::Create(bad, t->get()).status().code(), absl::StatusCode::kInvalidArgument);
  bad = config;
  bad.num_slots = 3;  // more than the transfer has
  EXPECT_EQ(ExpertCache::Create(bad, t->get()).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace moed::cache
