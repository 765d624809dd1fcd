// BlockPool: allocation, reference counts, the content index and LRU eviction of free cached blocks.
#include "engine/kv/block_pool.h"

#include <set>
#include <vector>

#include "gtest/gtest.h"

namespace moed {
namespace {

TEST(BlockPoolTest, AllocatesEveryBlockOnceThenFails) {
  BlockPool pool(4);
  std::set<int32_t> seen;
  for (int i = 0; i < 4; ++i) {
    std::optional<int32_t> b = pool.Allocate();
    ASSERT_TRUE(b.has_value());
    EXPECT_GE(*b, 0);
    EXPECT_LT(*b, 4);
    seen.insert(*b);
  }
  EXPECT_EQ(seen.size(), 4u);
  EXPECT_FALSE(pool.Allocate().has_value());
  EXPECT_EQ(pool.num_used(), 4);
  EXPECT_EQ(pool.num_free(), 0);
  pool.Release(2);
  EXPECT_EQ(pool.num_used(), 3);
  EXPECT_EQ(pool.Allocate(), std::optional<int32_t>(2));
}

TEST(BlockPoolTest, DoubleFreeIsABrokenInvariant) {
  BlockPool pool(2);
  int32_t b = *pool.Allocate();
  pool.Release(b);
  EXPECT_DEATH(pool.Release(b), "freed twice");
}

TEST(BlockPoolTest, SharedBlockIsFreeOnlyAfterItsLastHolder) {
  BlockPool pool(2);
  const std::vector<int32_t> tokens = {5, 6};
  int32_t b = *pool.Allocate();
  const uint64_t content = pool.Register(b, 77, tokens, 0);
  EXPECT_NE(content, 0u);
  ASSERT_EQ(pool.Find(77, tokens, 0), std::optional<int32_t>(b));
  pool.Acquire(b);
  EXPECT_EQ(pool.ref_count(b), 2);
  pool.Release(b);
  EXPECT_EQ(pool.num_used(), 1);
  pool.Release(b);
  EXPECT_EQ(pool.num_used(), 0);
  // Free but cached: still findable, and taken back out of the free count when acquired.
  ASSERT_EQ(pool.Find(77, tokens, 0), std::optional<int32_t>(b));
  pool.Acquire(b);
  EXPECT_EQ(pool.num_free(), 1);
  pool.Release(b);
}

TEST(BlockPoolTest, FindComparesTokensAndParentNotJustTheHash) {
  BlockPool pool(2);
  int32_t b = *pool.Allocate();
  const uint64_t content = pool.Register(b, 9, std::vector<int32_t>{1, 2}, 0);
  EXPECT_FALSE(pool.Find(9, std::vector<int32_t>{1, 3}, 0).has_value());  // same hash, other tokens
  EXPECT_FALSE(pool.Find(9, std::vector<int32_t>{1, 2}, 42).has_value()); // same tokens after another prefix
  // An equal content registered again names the cached one; the second block stays uncached.
  int32_t c = *pool.Allocate();
  EXPECT_EQ(pool.Register(c, 9, std::vector<int32_t>{1, 2}, 0), content);
  EXPECT_EQ(pool.content_id(c), 0u);
  // A different content under the same hash displaces it.
  pool.Release(c);
  int32_t d = *pool.Allocate();
  const uint64_t other = pool.Register(d, 9, std::vector<int32_t>{7, 7}, 0);
  EXPECT_NE(other, content);
  EXPECT_EQ(pool.content_id(b), 0u);
  EXPECT_EQ(pool.num_cached(), 1);
}

TEST(BlockPoolTest, EvictsLeastRecentlyFreedCachedBlockOnlyWhenNoPlainBlockIsLeft) {
  BlockPool pool(3);
  std::vector<int32_t> blocks;
  for (int i = 0; i < 3; ++i) blocks.push_back(*pool.Allocate());
  pool.Register(blocks[0], 100, std::vector<int32_t>{0}, 0);
  pool.Register(blocks[1], 101, std::vector<int32_t>{1}, 0);
  pool.Release(blocks[1]);  // freed first: the eviction candidate
  pool.Release(blocks[0]);
  pool.Release(blocks[2]);  // uncached: reused before any cached block
  EXPECT_EQ(pool.Allocate(), std::optional<int32_t>(blocks[2]));
  EXPECT_EQ(pool.evictions(), 0);
  EXPECT_EQ(pool.Allocate(), std::optional<int32_t>(blocks[1]));
  EXPECT_EQ(pool.evictions(), 1);
  EXPECT_FALSE(pool.Find(101, std::vector<int32_t>{1}, 0).has_value());
  EXPECT_TRUE(pool.Find(100, std::vector<int32_t>{0}, 0).has_value());
}

}  // namespace
}  // namespace moed
