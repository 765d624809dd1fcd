// KV cache sizing: how many blocks a byte budget buys, and the check that one full-length sequence fits.
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"

namespace moed {

// Upper bound for the default (kv_cache_bytes == 0) cache size; never below one full-length sequence.
inline constexpr int64_t kDefaultKvCacheCapBytes = int64_t{1} << 30;

struct KvSizingInput {
  int64_t kv_cache_bytes = 0;   // 0 → enough for max_running_seqs full contexts, capped
  int64_t bytes_per_block = 0;  // Backend::KvBytesPerBlock(block_size)
  int block_size = 0;           // tokens per block
  int max_model_len = 0;        // tokens of the longest sequence
  int max_running_seqs = 0;
};

// Number of KV blocks. INVALID_ARGUMENT (naming the flag values and the bytes needed) when the
// budget cannot hold one sequence of max_model_len tokens, or when an input is not positive.
absl::StatusOr<int> ComputeNumKvBlocks(const KvSizingInput& in);

}  // namespace moed
