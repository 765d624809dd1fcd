// BlockAllocator and KvBlockManager: allocation, growth, exhaustion, free, and no leaks under random use.
#include <random>
#include <set>

#include "engine/kv/block_allocator.h"
#include "engine/kv/kv_block_manager.h"
#include "gtest/gtest.h"

namespace moed {
namespace {

TEST(BlockAllocatorTest, AllocatesEveryBlockOnceThenFails) {
  BlockAllocator alloc(4);
  std::set<int32_t> seen;
  for (int i = 0; i < 4; ++i) {
    std::optional<int32_t> b = alloc.Allocate();
    ASSERT_TRUE(b.has_value());
    EXPECT_GE(*b, 0);
    EXPECT_LT(*b, 4);
    seen.insert(*b);
  }
  EXPECT_EQ(seen.size(), 4u);
  EXPECT_FALSE(alloc.Allocate().has_value());
  EXPECT_EQ(alloc.num_used(), 4);
  EXPECT_EQ(alloc.num_free(), 0);
  alloc.Free(2);
  EXPECT_EQ(alloc.num_used(), 3);
  EXPECT_EQ(alloc.Allocate(), std::optional<int32_t>(2));
}

TEST(BlockAllocatorTest, DoubleFreeIsABrokenInvariant) {
  BlockAllocator alloc(2);
  int32_t b = *alloc.Allocate();
  alloc.Free(b);
  EXPECT_DEATH(alloc.Free(b), "freed twice");
}

TEST(KvBlockManagerTest, TableGrowsWithTokens) {
  KvBlockManager kv(/*num_blocks=*/8, /*block_size=*/4);
  EXPECT_EQ(kv.BlocksFor(0), 0);
  EXPECT_EQ(kv.BlocksFor(1), 1);
  EXPECT_EQ(kv.BlocksFor(4), 1);
  EXPECT_EQ(kv.BlocksFor(5), 2);
  ASSERT_TRUE(kv.Grow(7, 3));
  EXPECT_EQ(kv.Table(7).size(), 1u);
  ASSERT_TRUE(kv.Grow(7, 4));  // same block
  EXPECT_EQ(kv.Table(7).size(), 1u);
  ASSERT_TRUE(kv.Grow(7, 9));
  EXPECT_EQ(kv.Table(7).size(), 3u);
  EXPECT_EQ(kv.num_used(), 3);
  ASSERT_TRUE(kv.Grow(7, 2));  // never shrinks
  EXPECT_EQ(kv.Table(7).size(), 3u);
  EXPECT_EQ(kv.ExtraBlocksNeeded(7, 13), 1);
  EXPECT_TRUE(kv.Table(99).empty());
}

TEST(KvBlockManagerTest, ExhaustionIsAllOrNothing) {
  KvBlockManager kv(4, 4);
  ASSERT_TRUE(kv.Grow(1, 12));  // 3 blocks
  EXPECT_FALSE(kv.CanGrow(2, 8));
  EXPECT_FALSE(kv.Grow(2, 8));  // needs 2, 1 free: nothing taken
  EXPECT_EQ(kv.num_used(), 3);
  EXPECT_TRUE(kv.Table(2).empty());
  ASSERT_TRUE(kv.Grow(2, 4));
  EXPECT_EQ(kv.num_free(), 0);
  kv.Free(1);
  EXPECT_EQ(kv.num_free(), 3);
  EXPECT_TRUE(kv.Table(1).empty());
  kv.Free(1);  // unknown now: ignored
  EXPECT_EQ(kv.num_free(), 3);
}

TEST(KvBlockManagerTest, RandomAllocFreeLeaksNothing) {
  std::mt19937 rng(1234);
  KvBlockManager kv(64, 16);
  std::set<int64_t> live;
  for (int iter = 0; iter < 20000; ++iter) {
    int64_t id = rng() % 24;
    int op = rng() % 3;
    if (op == 0) {
      kv.Free(id);
      live.erase(id);
    } else {
      int64_t tokens = kv.Table(id).size() * 16 + rng() % 40;
      if (kv.Grow(id, tokens)) live.insert(id);
    }
    // Every block is owned by exactly one table; counts add up.
    std::set<int32_t> owned;
    size_t held = 0;
    for (int64_t s : live) {
      held += kv.Table(s).size();
      owned.insert(kv.Table(s).begin(), kv.Table(s).end());
    }
    ASSERT_EQ(owned.size(), held);
    ASSERT_EQ(static_cast<int>(held), kv.num_used());
  }
  for (int64_t s : live) kv.Free(s);
  EXPECT_EQ(kv.num_used(), 0);
  EXPECT_EQ(kv.num_free(), 64);
  EXPECT_EQ(kv.num_sequences(), 0);
}

}  // namespace
}  // namespace moed
