// BlockPool: free list, eviction order and content index.
#include "engine/kv/block_pool.h"

#include <algorithm>

#include "absl/base/internal/raw_logging.h"

namespace moed {

BlockPool::BlockPool(int num_blocks) : blocks_(num_blocks > 0 ? num_blocks : 0) {
  free_.reserve(blocks_.size());
  // Pushed in reverse so the first allocations return 0, 1, 2, ...
  for (int b = num_total() - 1; b >= 0; --b) free_.push_back(b);
}

std::optional<int32_t> BlockPool::Allocate() {
  int32_t block;
  if (!free_.empty()) {
    block = free_.back();
    free_.pop_back();
  } else if (!lru_.empty()) {
    block = lru_.front();
    Uncache(block);  // moves it to free_
    free_.pop_back();
    ++evictions_;
  } else {
    return std::nullopt;
  }
  blocks_[block].ref = 1;
  return block;
}

void BlockPool::Acquire(int32_t block) {
  Block& b = blocks_[block];
  ABSL_RAW_CHECK(b.ref > 0 || b.content != 0, "only a held or cached KV block can be acquired");
  if (b.ref == 0) lru_.erase(b.lru_pos);
  ++b.ref;
}

void BlockPool::Release(int32_t block) {
  ABSL_RAW_CHECK(block >= 0 && block < num_total(), "KV block id out of range");
  Block& b = blocks_[block];
  ABSL_RAW_CHECK(b.ref > 0, "KV block freed twice");
  if (--b.ref > 0) return;
  if (b.content != 0) {
    b.lru_pos = lru_.insert(lru_.end(), block);
  } else {
    free_.push_back(block);
  }
}

std::optional<int32_t> BlockPool::Find(uint64_t hash, absl::Span<const int32_t> tokens,
                                       uint64_t parent_content) const {
  auto it = index_.find(hash);
  if (it == index_.end()) return std::nullopt;
  const Block& b = blocks_[it->second];
  if (b.parent_content != parent_content || !std::equal(b.tokens.begin(), b.tokens.end(), tokens.begin(),
                                                        tokens.end())) {
    return std::nullopt;
  }
  return it->second;
}

uint64_t BlockPool::Register(int32_t block, uint64_t hash, absl::Span<const int32_t> tokens,
                             uint64_t parent_content) {
  if (std::optional<int32_t> same = Find(hash, tokens, parent_content)) return blocks_[*same].content;
  Block& b = blocks_[block];
  ABSL_RAW_CHECK(b.ref > 0, "only a held KV block can be registered");
  if (b.content != 0) return b.content;  // already cached under this content
  auto it = index_.find(hash);
  if (it != index_.end()) Uncache(it->second);  // a different content with the same hash: the newer one wins
  b.content = next_content_++;
  b.hash = hash;
  b.parent_content = parent_content;
  b.tokens.assign(tokens.begin(), tokens.end());
  index_[hash] = block;
  return b.content;
}

void BlockPool::Uncache(int32_t block) {
  Block& b = blocks_[block];
  index_.erase(b.hash);
  b.content = 0;
  b.tokens.clear();
  if (b.ref == 0) {
    lru_.erase(b.lru_pos);
    free_.push_back(block);
  }
}

}  // namespace moed
