// KvBlockManager: each sequence's block table over a reference-counted BlockPool, and prefix caching: full blocks
// are indexed by a hash chained over their token ids, and a new sequence starts from the longest cached prefix.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/types/span.h"
#include "engine/kv/block_pool.h"

namespace moed {

// One sequence's KV: owned by the sequence (its request object), changed only through KvBlockManager.
// Position p lives in block blocks[p / block_size], slot p % block_size.
struct KvSequence {
  std::vector<int32_t> blocks;          // the block table
  std::vector<uint64_t> block_hashes;   // chained hash of blocks[i], for the leading full blocks committed
  std::vector<uint64_t> content_ids;    // (block_hashes.size()) cached content each of them holds; 0 = unknown
};

// The cached prefix found for a sequence: whole blocks only.
struct PrefixHit {
  std::vector<int32_t> blocks;
  std::vector<uint64_t> block_hashes;
  std::vector<uint64_t> content_ids;
  int num_tokens = 0;  // blocks.size() * block_size
};

struct PrefixCacheOptions {
  bool enabled = true;
  uint64_t salt = 0;  // BlockHashSalt(model identity): the root of every hash chain
};

// Not thread-safe: the engine thread owns it. Every KvSequence given to it must be freed (Free) before the
// manager is destroyed or the sequence forgotten.
class KvBlockManager {
 public:
  KvBlockManager(int num_blocks, int block_size, PrefixCacheOptions prefix = {});

  int block_size() const { return block_size_; }
  int num_total() const { return pool_.num_total(); }
  int num_free() const { return pool_.num_free(); }   // uncached free blocks and evictable cached ones
  int num_used() const { return pool_.num_used(); }   // held by at least one sequence
  int num_cached() const { return pool_.num_cached(); }
  bool prefix_caching() const { return prefix_.enabled; }
  const BlockPool& pool() const { return pool_; }

  // Blocks needed to hold `num_tokens` positions.
  int BlocksFor(int64_t num_tokens) const;
  // Blocks `seq` still needs beyond what it holds so that it covers `num_tokens` positions.
  int ExtraBlocksNeeded(const KvSequence& seq, int64_t num_tokens) const;
  bool CanGrow(const KvSequence& seq, int64_t num_tokens) const {
    return ExtraBlocksNeeded(seq, num_tokens) <= num_free();
  }
  // Grows the table of `seq` to cover `num_tokens` positions. All or nothing: returns false and allocates nothing
  // when not enough blocks are free.
  bool Grow(KvSequence& seq, int64_t num_tokens);
  // Releases every block of `seq` (last block first, so a prefix outlives its tail in the cache); `seq` is empty
  // after. Cached blocks stay findable until evicted.
  void Free(KvSequence& seq);

  // The longest run of cached full blocks that starts `tokens` and ends at or before `max_tokens`. Changes nothing;
  // empty when prefix caching is off.
  PrefixHit FindPrefix(absl::Span<const int32_t> tokens, int64_t max_tokens) const;
  // For an empty `seq`: takes the blocks of `hit` (just found, nothing changed since) and grows to `num_tokens`
  // positions (≥ hit.num_tokens). All or nothing, as Grow.
  bool AllocateWithPrefix(KvSequence& seq, const PrefixHit& hit, int64_t num_tokens);
  // The KV of positions [0, num_computed) of `seq` is written: indexes its full blocks not yet indexed.
  // `tokens` are the sequence's tokens (at least num_computed). No-op when prefix caching is off.
  void Commit(KvSequence& seq, absl::Span<const int32_t> tokens, int64_t num_computed);

 private:
  int block_size_;
  PrefixCacheOptions prefix_;
  BlockPool pool_;
};

}  // namespace moed
