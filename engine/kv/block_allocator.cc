// BlockAllocator: free-list implementation.
#include "engine/kv/block_allocator.h"

#include "absl/base/internal/raw_logging.h"

namespace moed {

BlockAllocator::BlockAllocator(int num_blocks) : allocated_(num_blocks > 0 ? num_blocks : 0, false) {
  free_.reserve(allocated_.size());
  // Pushed in reverse so the first allocations return 0, 1, 2, ...
  for (int b = num_total() - 1; b >= 0; --b) free_.push_back(b);
}

std::optional<int32_t> BlockAllocator::Allocate() {
  if (free_.empty()) return std::nullopt;
  int32_t block = free_.back();
  free_.pop_back();
  allocated_[block] = true;
  return block;
}

void BlockAllocator::Free(int32_t block) {
  ABSL_RAW_CHECK(block >= 0 && block < num_total(), "KV block id out of range");
  ABSL_RAW_CHECK(allocated_[block], "KV block freed twice");
  allocated_[block] = false;
  free_.push_back(block);
}

}  // namespace moed
