// KvBlockManager: block tables, exhaustion, prefix lookup by chained hashes (whole blocks, exact prefixes, salted
// by the model), sharing and LRU eviction, and no leaks under random use with sharing.
#include "engine/kv/kv_block_manager.h"

#include <map>
#include <numeric>
#include <random>
#include <set>

#include "engine/kv/block_hash.h"
#include "gtest/gtest.h"

namespace moed {
namespace {

std::vector<int32_t> Iota(int n, int32_t from = 0) {
  std::vector<int32_t> v(n);
  std::iota(v.begin(), v.end(), from);
  return v;
}

TEST(KvBlockManagerTest, TableGrowsWithTokens) {
  KvBlockManager kv(/*num_blocks=*/8, /*block_size=*/4);
  KvSequence s;
  EXPECT_EQ(kv.BlocksFor(0), 0);
  EXPECT_EQ(kv.BlocksFor(1), 1);
  EXPECT_EQ(kv.BlocksFor(4), 1);
  EXPECT_EQ(kv.BlocksFor(5), 2);
  ASSERT_TRUE(kv.Grow(s, 3));
  EXPECT_EQ(s.blocks.size(), 1u);
  ASSERT_TRUE(kv.Grow(s, 4));  // same block
  EXPECT_EQ(s.blocks.size(), 1u);
  ASSERT_TRUE(kv.Grow(s, 9));
  EXPECT_EQ(s.blocks.size(), 3u);
  EXPECT_EQ(kv.num_used(), 3);
  ASSERT_TRUE(kv.Grow(s, 2));  // never shrinks
  EXPECT_EQ(s.blocks.size(), 3u);
  EXPECT_EQ(kv.ExtraBlocksNeeded(s, 13), 1);
  kv.Free(s);
  EXPECT_TRUE(s.blocks.empty());
}

TEST(KvBlockManagerTest, ExhaustionIsAllOrNothing) {
  KvBlockManager kv(4, 4);
  KvSequence a, b;
  ASSERT_TRUE(kv.Grow(a, 12));  // 3 blocks
  EXPECT_FALSE(kv.CanGrow(b, 8));
  EXPECT_FALSE(kv.Grow(b, 8));  // needs 2, 1 free: nothing taken
  EXPECT_EQ(kv.num_used(), 3);
  EXPECT_TRUE(b.blocks.empty());
  ASSERT_TRUE(kv.Grow(b, 4));
  EXPECT_EQ(kv.num_free(), 0);
  kv.Free(a);
  EXPECT_EQ(kv.num_free(), 3);
  kv.Free(a);  // empty now: nothing to release
  EXPECT_EQ(kv.num_free(), 3);
  kv.Free(b);
}

TEST(KvBlockManagerTest, FindsTheLongestCommittedPrefixOfWholeBlocks) {
  KvBlockManager kv(16, 4, {.enabled = true, .salt = BlockHashSalt("m")});
  const std::vector<int32_t> prompt = Iota(11);  // 2 full blocks and 3 tokens
  KvSequence a;
  ASSERT_TRUE(kv.Grow(a, 11));
  EXPECT_EQ(kv.FindPrefix(prompt, 11).num_tokens, 0) << "nothing is cached before a commit";
  kv.Commit(a, prompt, 6);  // the KV of 6 positions is written: one full block
  EXPECT_EQ(kv.FindPrefix(prompt, 11).num_tokens, 4);
  kv.Commit(a, prompt, 11);
  EXPECT_EQ(kv.num_cached(), 2);
  PrefixHit hit = kv.FindPrefix(prompt, 11);
  EXPECT_EQ(hit.num_tokens, 8);
  EXPECT_EQ(hit.blocks, std::vector<int32_t>(a.blocks.begin(), a.blocks.begin() + 2));
  EXPECT_EQ(kv.FindPrefix(prompt, 7).num_tokens, 4) << "a block ending past max_tokens is not taken";
  EXPECT_EQ(kv.FindPrefix(prompt, 8).num_tokens, 8);

  // A second sequence shares the two blocks and gets its own third.
  KvSequence b;
  std::vector<int32_t> other = prompt;
  other[10] = 99;
  hit = kv.FindPrefix(other, 10);
  ASSERT_TRUE(kv.AllocateWithPrefix(b, hit, 11));
  EXPECT_EQ(kv.num_used(), 4);
  EXPECT_EQ(b.blocks[0], a.blocks[0]);
  EXPECT_EQ(b.blocks[1], a.blocks[1]);
  EXPECT_NE(b.blocks[2], a.blocks[2]);
  EXPECT_EQ(kv.pool().ref_count(a.blocks[0]), 2);
  kv.Free(a);
  EXPECT_EQ(kv.num_used(), 3);
  kv.Free(b);
  EXPECT_EQ(kv.num_used(), 0);
  EXPECT_EQ(kv.num_cached(), 2);
  EXPECT_EQ(kv.FindPrefix(prompt, 11).num_tokens, 8) << "freed cached blocks stay findable";
}

TEST(KvBlockManagerTest, ABlockMatchesOnlyAfterTheSamePrefix) {
  KvBlockManager kv(16, 2, {.enabled = true, .salt = 1});
  KvSequence a;
  const std::vector<int32_t> x = {1, 2, 3, 4};
  ASSERT_TRUE(kv.Grow(a, 4));
  kv.Commit(a, x, 4);
  // Same second block after a different first block: no match at all.
  EXPECT_EQ(kv.FindPrefix(std::vector<int32_t>{9, 9, 3, 4}, 4).num_tokens, 0);
  EXPECT_EQ(kv.FindPrefix(std::vector<int32_t>{1, 2, 3, 5}, 4).num_tokens, 2);
  // Another model (salt) shares nothing.
  KvBlockManager other(16, 2, {.enabled = true, .salt = 2});
  KvSequence b;
  ASSERT_TRUE(other.Grow(b, 4));
  other.Commit(b, x, 4);
  EXPECT_NE(HashBlock(1, {1, 2}), HashBlock(2, {1, 2}));
  EXPECT_EQ(HashBlock(1, {1, 2}), HashBlock(1, {1, 2}));
  kv.Free(a);
  other.Free(b);
}

TEST(KvBlockManagerTest, EvictionBreaksTheChainAfterTheEvictedBlock) {
  KvBlockManager kv(3, 2, {.enabled = true, .salt = 7});
  KvSequence a;
  const std::vector<int32_t> x = {1, 2, 3, 4, 5, 6};
  ASSERT_TRUE(kv.Grow(a, 6));
  kv.Commit(a, x, 6);
  kv.Free(a);  // last block first: block 2 is the least recently freed
  KvSequence b;
  ASSERT_TRUE(kv.Grow(b, 2));  // evicts block 2 of x
  EXPECT_EQ(kv.FindPrefix(x, 6).num_tokens, 4);
  kv.Free(b);
  KvSequence c;
  ASSERT_TRUE(kv.Grow(c, 4));  // b's uncached block, then x's block 1 (freed before block 0)
  EXPECT_EQ(kv.FindPrefix(x, 6).num_tokens, 2);
  kv.Free(c);
}

TEST(KvBlockManagerTest, OffFindsNothing) {
  KvBlockManager kv(8, 2, {.enabled = false});
  KvSequence a;
  const std::vector<int32_t> x = {1, 2, 3, 4};
  ASSERT_TRUE(kv.Grow(a, 4));
  kv.Commit(a, x, 4);
  EXPECT_EQ(kv.num_cached(), 0);
  EXPECT_EQ(kv.FindPrefix(x, 4).num_tokens, 0);
  kv.Free(a);
}

// Sequences drawn from a few shared prefixes grow, commit, and free at random in a small pool: every held block
// is counted once however many sequences share it, a found prefix always holds the tokens it claims, and nothing
// leaks.
TEST(KvBlockManagerTest, RandomSharingLeaksNothing) {
  std::mt19937 rng(1234);
  const int kBlock = 4;
  KvBlockManager kv(48, kBlock, {.enabled = true, .salt = 3});
  std::map<int, KvSequence> seqs;
  std::map<int, std::vector<int32_t>> tokens;
  std::vector<int32_t> owner_tokens(48 * kBlock, -1);  // what each block slot holds, as written by its sequence
  for (int iter = 0; iter < 20000; ++iter) {
    const int id = static_cast<int>(rng() % 16);
    if (rng() % 3 == 0) {
      kv.Free(seqs[id]);
      tokens.erase(id);
      continue;
    }
    if (!tokens.contains(id)) {  // a new sequence: one of 3 prefixes, then its own tokens
      std::vector<int32_t> t = Iota(4 + static_cast<int>(rng() % 12), 1000 * static_cast<int>(rng() % 3));
      for (int i = 0; i < 6; ++i) t.push_back(static_cast<int32_t>(rng() % 4));
      const PrefixHit hit = kv.FindPrefix(t, static_cast<int64_t>(t.size()) - 1);
      for (int p = 0; p < hit.num_tokens; ++p) {
        ASSERT_EQ(owner_tokens[hit.blocks[p / kBlock] * kBlock + p % kBlock], t[p]) << "a cached block lies";
      }
      if (!kv.AllocateWithPrefix(seqs[id], hit, static_cast<int64_t>(t.size()))) continue;
      for (size_t p = hit.num_tokens; p < t.size(); ++p) owner_tokens[seqs[id].blocks[p / kBlock] * kBlock + p % kBlock] = t[p];
      kv.Commit(seqs[id], t, static_cast<int64_t>(t.size()));
      tokens[id] = t;
    }
    std::set<int32_t> held;
    for (const auto& [sid, t] : tokens) held.insert(seqs[sid].blocks.begin(), seqs[sid].blocks.end());
    ASSERT_EQ(static_cast<int>(held.size()), kv.num_used());
  }
  for (auto& [sid, s] : seqs) kv.Free(s);
  EXPECT_EQ(kv.num_used(), 0);
  EXPECT_EQ(kv.num_free(), 48);
}

}  // namespace
}  // namespace moed
