// BlockAllocator: a fixed pool of KV block ids with a free list; allocation can fail (→ preemption upstream).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace moed {

// Hands out block ids in [0, num_blocks). Not thread-safe: the engine thread owns it.
class BlockAllocator {
 public:
  explicit BlockAllocator(int num_blocks);

  // A free block id, or nullopt when the pool is exhausted.
  std::optional<int32_t> Allocate();
  // Returns `block` to the pool. Freeing an id that is not allocated is a broken invariant (CHECK).
  void Free(int32_t block);

  int num_total() const { return static_cast<int>(allocated_.size()); }
  int num_free() const { return static_cast<int>(free_.size()); }
  int num_used() const { return num_total() - num_free(); }

 private:
  std::vector<int32_t> free_;    // LIFO free list: recently freed blocks are reused first
  std::vector<bool> allocated_;  // (num_blocks) ownership flags, to catch double frees
};

}  // namespace moed
