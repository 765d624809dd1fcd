// ComputeNumKvBlocks: byte budgets, the automatic default and the one-full-sequence check.
#include "engine/kv/kv_sizing.h"

#include "gtest/gtest.h"

namespace moed {
namespace {

TEST(KvSizingTest, BytesBuyWholeBlocks) {
  absl::StatusOr<int> n = ComputeNumKvBlocks({.kv_cache_bytes = 10'000, .bytes_per_block = 1000, .block_size = 16,
                                              .max_model_len = 64, .max_running_seqs = 4});
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 10);
}

TEST(KvSizingTest, DefaultHoldsEveryRunningSequenceAtFullLength) {
  absl::StatusOr<int> n = ComputeNumKvBlocks(
      {.kv_cache_bytes = 0, .bytes_per_block = 1000, .block_size = 16, .max_model_len = 100, .max_running_seqs = 4});
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 7 * 4);
}

TEST(KvSizingTest, DefaultIsCappedButFitsOneSequence) {
  const int64_t per_block = kDefaultKvCacheCapBytes / 10;  // the cap buys 10 blocks
  absl::StatusOr<int> n = ComputeNumKvBlocks({.kv_cache_bytes = 0, .bytes_per_block = per_block, .block_size = 16,
                                              .max_model_len = 16 * 4, .max_running_seqs = 64});
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 10);
  n = ComputeNumKvBlocks({.kv_cache_bytes = 0, .bytes_per_block = per_block, .block_size = 16,
                          .max_model_len = 16 * 40, .max_running_seqs = 64});
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 40);
}

TEST(KvSizingTest, TooSmallForOneSequenceNamesTheNumbers) {
  absl::StatusOr<int> n = ComputeNumKvBlocks(
      {.kv_cache_bytes = 5000, .bytes_per_block = 1000, .block_size = 16, .max_model_len = 100, .max_running_seqs = 4});
  ASSERT_EQ(n.status().code(), absl::StatusCode::kInvalidArgument);
  std::string msg(n.status().message());
  EXPECT_NE(msg.find("kv_cache_bytes=5000"), std::string::npos) << msg;
  EXPECT_NE(msg.find("max_model_len=100"), std::string::npos) << msg;
  EXPECT_NE(msg.find("7000 bytes"), std::string::npos) << msg;
}

}  // namespace
}  // namespace moed
