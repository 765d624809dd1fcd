// KvBlockManager: per-sequence block tables over a BlockAllocator — grow as tokens are appended, free at once.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "engine/kv/block_allocator.h"

namespace moed {

// Position p of a sequence lives in block table[p / block_size], slot p % block_size.
// Not thread-safe: the engine thread owns it.
class KvBlockManager {
 public:
  KvBlockManager(int num_blocks, int block_size);

  int block_size() const { return block_size_; }
  int num_total() const { return allocator_.num_total(); }
  int num_free() const { return allocator_.num_free(); }
  int num_used() const { return allocator_.num_used(); }

  // Blocks needed to hold `num_tokens` positions.
  int BlocksFor(int64_t num_tokens) const;
  // Blocks `seq_id` still needs beyond what it holds so that it covers `num_tokens` positions.
  int ExtraBlocksNeeded(int64_t seq_id, int64_t num_tokens) const;
  bool CanGrow(int64_t seq_id, int64_t num_tokens) const {
    return ExtraBlocksNeeded(seq_id, num_tokens) <= num_free();
  }
  // Grows the table of `seq_id` (created when new) to cover `num_tokens` positions. All or nothing:
  // returns false and allocates nothing when not enough blocks are free.
  bool Grow(int64_t seq_id, int64_t num_tokens);
  // Frees every block of `seq_id`; unknown ids are ignored.
  void Free(int64_t seq_id);

  // The table of `seq_id` (empty when it holds none). Valid until the next Grow/Free of that id.
  const std::vector<int32_t>& Table(int64_t seq_id) const;
  int num_sequences() const { return static_cast<int>(tables_.size()); }

 private:
  int block_size_;
  BlockAllocator allocator_;
  absl::flat_hash_map<int64_t, std::vector<int32_t>> tables_;
};

}  // namespace moed
