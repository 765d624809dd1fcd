// KvBlockManager: block tables, prefix lookup and commit.
#include "engine/kv/kv_block_manager.h"

#include <algorithm>

#include "absl/base/internal/raw_logging.h"
#include "engine/kv/block_hash.h"

namespace moed {

KvBlockManager::KvBlockManager(int num_blocks, int block_size, PrefixCacheOptions prefix)
    : block_size_(block_size), prefix_(prefix), pool_(num_blocks) {
  ABSL_RAW_CHECK(block_size > 0, "KV block size must be positive");
}

int KvBlockManager::BlocksFor(int64_t num_tokens) const {
  if (num_tokens <= 0) return 0;
  return static_cast<int>((num_tokens + block_size_ - 1) / block_size_);
}

int KvBlockManager::ExtraBlocksNeeded(const KvSequence& seq, int64_t num_tokens) const {
  return std::max(0, BlocksFor(num_tokens) - static_cast<int>(seq.blocks.size()));
}

bool KvBlockManager::Grow(KvSequence& seq, int64_t num_tokens) {
  const int extra = ExtraBlocksNeeded(seq, num_tokens);
  if (extra > num_free()) return false;
  for (int i = 0; i < extra; ++i) {
    std::optional<int32_t> block = pool_.Allocate();
    ABSL_RAW_CHECK(block.has_value(), "the free count promised enough KV blocks");
    seq.blocks.push_back(*block);
  }
  return true;
}

void KvBlockManager::Free(KvSequence& seq) {
  for (auto it = seq.blocks.rbegin(); it != seq.blocks.rend(); ++it) pool_.Release(*it);
  seq = KvSequence();
}

PrefixHit KvBlockManager::FindPrefix(absl::Span<const int32_t> tokens, int64_t max_tokens) const {
  PrefixHit hit;
  if (!prefix_.enabled) return hit;
  const int64_t limit = std::min<int64_t>(max_tokens, static_cast<int64_t>(tokens.size()));
  uint64_t parent_hash = prefix_.salt;
  uint64_t parent_content = 0;
  for (int64_t end = block_size_; end <= limit; end += block_size_) {
    const absl::Span<const int32_t> block_tokens = tokens.subspan(end - block_size_, block_size_);
    const uint64_t hash = HashBlock(parent_hash, block_tokens);
    std::optional<int32_t> block = pool_.Find(hash, block_tokens, parent_content);
    if (!block) break;
    parent_hash = hash;
    parent_content = pool_.content_id(*block);
    hit.blocks.push_back(*block);
    hit.block_hashes.push_back(hash);
    hit.content_ids.push_back(parent_content);
  }
  hit.num_tokens = static_cast<int>(hit.blocks.size()) * block_size_;
  return hit;
}

bool KvBlockManager::AllocateWithPrefix(KvSequence& seq, const PrefixHit& hit, int64_t num_tokens) {
  ABSL_RAW_CHECK(seq.blocks.empty(), "a prefix is taken by a sequence that holds no blocks");
  int free_taken = 0;  // hit blocks that are free now: acquiring them takes them out of the free count
  for (int32_t b : hit.blocks) free_taken += pool_.ref_count(b) == 0;
  const int extra = std::max<int>(0, BlocksFor(num_tokens) - static_cast<int>(hit.blocks.size()));
  if (extra > num_free() - free_taken) return false;
  for (int32_t b : hit.blocks) pool_.Acquire(b);
  seq.blocks = hit.blocks;
  seq.block_hashes = hit.block_hashes;
  seq.content_ids = hit.content_ids;
  const bool grown = Grow(seq, num_tokens);
  ABSL_RAW_CHECK(grown, "the free count promised enough KV blocks");
  return true;
}

void KvBlockManager::Commit(KvSequence& seq, absl::Span<const int32_t> tokens, int64_t num_computed) {
  if (!prefix_.enabled) return;
  const int64_t full = std::min<int64_t>(num_computed, static_cast<int64_t>(tokens.size())) / block_size_;
  ABSL_RAW_CHECK(full <= static_cast<int64_t>(seq.blocks.size()), "computed positions past the block table");
  for (int64_t i = static_cast<int64_t>(seq.block_hashes.size()); i < full; ++i) {
    const uint64_t parent_hash = i == 0 ? prefix_.salt : seq.block_hashes[i - 1];
    const uint64_t parent_content = i == 0 ? 0 : seq.content_ids[i - 1];
    const absl::Span<const int32_t> block_tokens = tokens.subspan(i * block_size_, block_size_);
    const uint64_t hash = HashBlock(parent_hash, block_tokens);
    seq.block_hashes.push_back(hash);
    // A block after an unknown content cannot be named either (its predecessor's content was displaced).
    seq.content_ids.push_back(i > 0 && parent_content == 0
                                  ? 0
                                  : pool_.Register(seq.blocks[i], hash, block_tokens, parent_content));
  }
}

}  // namespace moed
