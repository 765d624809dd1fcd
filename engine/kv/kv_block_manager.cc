// KvBlockManager: block tables per sequence.
#include "engine/kv/kv_block_manager.h"

#include <algorithm>

#include "absl/base/internal/raw_logging.h"

namespace moed {

KvBlockManager::KvBlockManager(int num_blocks, int block_size)
    : block_size_(block_size), allocator_(num_blocks) {
  ABSL_RAW_CHECK(block_size > 0, "KV block size must be positive");
}

int KvBlockManager::BlocksFor(int64_t num_tokens) const {
  if (num_tokens <= 0) return 0;
  return static_cast<int>((num_tokens + block_size_ - 1) / block_size_);
}

int KvBlockManager::ExtraBlocksNeeded(int64_t seq_id, int64_t num_tokens) const {
  int held = static_cast<int>(Table(seq_id).size());
  return std::max(0, BlocksFor(num_tokens) - held);
}

bool KvBlockManager::Grow(int64_t seq_id, int64_t num_tokens) {
  int extra = ExtraBlocksNeeded(seq_id, num_tokens);
  if (extra > num_free()) return false;
  std::vector<int32_t>& table = tables_[seq_id];
  for (int i = 0; i < extra; ++i) {
    std::optional<int32_t> block = allocator_.Allocate();
    ABSL_RAW_CHECK(block.has_value(), "the free count promised enough KV blocks");
    table.push_back(*block);
  }
  return true;
}

void KvBlockManager::Free(int64_t seq_id) {
  auto it = tables_.find(seq_id);
  if (it == tables_.end()) return;
  for (int32_t block : it->second) allocator_.Free(block);
  tables_.erase(it);
}

const std::vector<int32_t>& KvBlockManager::Table(int64_t seq_id) const {
  static const std::vector<int32_t> kEmpty;
  auto it = tables_.find(seq_id);
  return it == tables_.end() ? kEmpty : it->second;
}

}  // namespace moed
