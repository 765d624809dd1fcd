// KV cache sizing.
#include "engine/kv/kv_sizing.h"

#include <algorithm>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"

namespace moed {

absl::StatusOr<int> ComputeNumKvBlocks(const KvSizingInput& in) {
  if (in.block_size <= 0) {
    return absl::InvalidArgumentError(absl::StrFormat("kv_block_size must be positive, got %d", in.block_size));
  }
  if (in.max_model_len <= 0) {
    return absl::InvalidArgumentError(absl::StrFormat("max_model_len must be positive, got %d", in.max_model_len));
  }
  if (in.max_running_seqs <= 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("max_running_seqs must be positive, got %d", in.max_running_seqs));
  }
  if (in.kv_cache_bytes < 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("kv_cache_bytes must be ≥ 0 (0 = automatic), got %d", in.kv_cache_bytes));
  }
  if (in.bytes_per_block <= 0) {
    return absl::InternalError(absl::StrFormat("backend reports %d bytes per KV block", in.bytes_per_block));
  }
  const int64_t blocks_per_seq = (in.max_model_len + in.block_size - 1) / in.block_size;
  const int64_t max_blocks = std::numeric_limits<int32_t>::max();
  if (in.kv_cache_bytes == 0) {
    int64_t wanted = blocks_per_seq * in.max_running_seqs;
    int64_t cap = std::max(blocks_per_seq, kDefaultKvCacheCapBytes / in.bytes_per_block);
    return static_cast<int>(std::min({wanted, cap, max_blocks}));
  }
  int64_t blocks = std::min(in.kv_cache_bytes / in.bytes_per_block, max_blocks);
  if (blocks < blocks_per_seq) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "kv_cache_bytes=%d holds %d KV blocks of %d tokens (%d bytes each), but one sequence of "
        "max_model_len=%d tokens needs %d blocks = %d bytes; raise kv_cache_bytes or lower max_model_len",
        in.kv_cache_bytes, blocks, in.block_size, in.bytes_per_block, in.max_model_len, blocks_per_seq,
        blocks_per_seq * in.bytes_per_block));
  }
  return static_cast<int>(blocks);
}

}  // namespace moed
