// BlockPool: a fixed pool of reference-counted KV block ids, with the prefix cache's index of full blocks by
// content; free cached blocks stay findable until evicted, least recently freed first.
#pragma once

#include <cstdint>
#include <list>
#include <optional>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/types/span.h"

namespace moed {

// Block ids are in [0, num_blocks). A block is free (ref 0) or held by ref sequences. A cached block is also
// indexed by content: (hash, its tokens, the content id of the block before it); a free cached block is still
// findable and is only reused (evicted, LRU) when no uncached free block is left.
// Content ids name one cached content for the life of the pool: they are never reused, so a block whose
// predecessor was evicted can no longer be matched through it. Not thread-safe: the engine thread owns it.
class BlockPool {
 public:
  explicit BlockPool(int num_blocks);

  int num_total() const { return static_cast<int>(blocks_.size()); }
  int num_free() const { return static_cast<int>(free_.size() + lru_.size()); }  // allocatable now
  int num_used() const { return num_total() - num_free(); }                      // held by a sequence
  int num_cached() const { return static_cast<int>(index_.size()); }
  int64_t evictions() const { return evictions_; }
  int ref_count(int32_t block) const { return blocks_[block].ref; }

  // A block with ref 1: an uncached free block when there is one (LIFO), else the least recently freed cached
  // block, evicted from the index. nullopt when every block is held.
  std::optional<int32_t> Allocate();
  // One more holder of `block` (found by Find); a free cached block leaves the eviction order.
  void Acquire(int32_t block);
  // One holder less; at 0 a cached block becomes the most recently freed, an uncached one plain free.
  // Releasing a block nobody holds is a broken invariant (CHECK).
  void Release(int32_t block);

  // The cached block holding `tokens` after the content `parent_content` (0 = the sequence's start) under
  // `hash`, or nullopt.
  std::optional<int32_t> Find(uint64_t hash, absl::Span<const int32_t> tokens, uint64_t parent_content) const;
  // Content id of a cached block (0 when not cached).
  uint64_t content_id(int32_t block) const { return blocks_[block].content; }
  // `block` (held, its KV written for all of `tokens`) holds `tokens` after `parent_content`: returns the content
  // id of that content: an equal block already cached (this one stays uncached), or `block` itself, indexed now
  // (displacing a different content under the same hash).
  uint64_t Register(int32_t block, uint64_t hash, absl::Span<const int32_t> tokens, uint64_t parent_content);

 private:
  struct Block {
    int ref = 0;
    uint64_t content = 0;  // 0 = not cached
    uint64_t hash = 0;
    uint64_t parent_content = 0;
    std::vector<int32_t> tokens;
    std::list<int32_t>::iterator lru_pos;  // valid while cached and ref == 0
  };
  void Uncache(int32_t block);

  std::vector<Block> blocks_;
  std::vector<int32_t> free_;                      // uncached, ref 0 (LIFO)
  std::list<int32_t> lru_;                         // cached, ref 0: front = least recently freed
  absl::flat_hash_map<uint64_t, int32_t> index_;   // hash → cached block
  uint64_t next_content_ = 1;
  int64_t evictions_ = 0;
};

}  // namespace moed
