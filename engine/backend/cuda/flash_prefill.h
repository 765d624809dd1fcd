// Tensor-core causal attention for prefill chunks over the paged KV cache (flash-attention-2 style): one CTA per
// (query tile, query head), bf16 Q·Kᵀ and P·V on mma.sync m16n8k16 (sm_80+), online softmax in fp32. The tiles come
// from host/flash_prefill_plan.h; rows outside every tile are left to flash-decoding (flash_decode.h).
#pragma once

#include <cuda_runtime.h>

#include "engine/backend/cuda/attention.h"
#include "engine/backend/cuda/host/flash_prefill_plan.h"

namespace moed::cuda {

// Attention of the rows of `tiles` (device array of `num_tiles` PrefillTile, ≤ 65535) for every query head, written
// to a.out; the other rows of a.out are not touched. Uses a.q, a.k_cache, a.v_cache, a.block_tables, a.num_heads,
// a.num_kv_heads, a.head_dim, a.block_size, a.sliding_window, a.scale (a.positions, a.table_offsets, a.rows and
// a.tokens are not read: the tiles carry them). Every position a tile attends to must already be in the cache.
// Requires FlashPrefillSupported (else cudaErrorInvalidValue). Q and P are rounded to bf16 for the tensor cores.
cudaError_t LaunchFlashPrefill(const PagedAttentionArgs& a, const PrefillTile* tiles, int num_tiles,
                               cudaStream_t stream);

}  // namespace moed::cuda
