// Flash-decoding attention over the paged KV cache: the context of each (row, KV head) split across CTAs, each CTA
// serving all the query heads that share the KV head (16-byte K/V loads, online softmax), then a reduction kernel.
// Same contract as LaunchPagedAttention (attention.h), which stays as the reference.
#pragma once

#include <cstddef>

#include <cuda_runtime.h>

#include "engine/backend/cuda/attention.h"
#include "engine/backend/cuda/host/flash_plan.h"

namespace moed::cuda {

constexpr int kFlashMaxGroup = 8;  // query heads per KV head the split kernel serves; more → the reference kernel

// FlashDecodeSplits (how many splits) and FlashSplitRange (which positions each takes): host/flash_plan.h.
// Bytes of the partial results: rows × heads × splits × (head_dim + 2) fp32 (rows: the rows computed, a.tokens).
size_t FlashDecodeWorkspaceBytes(int rows, int num_heads, int head_dim, int splits);
// Whether the split kernel takes the shape (head_dim a power of two in [32, 256], heads/kv_heads ≤ 8); otherwise
// LaunchFlashDecode runs the reference kernel.
bool FlashDecodeSupported(int num_heads, int num_kv_heads, int head_dim);

// `workspace`: FlashDecodeWorkspaceBytes(a.tokens, a.num_heads, a.head_dim, splits) bytes of device memory.
cudaError_t LaunchFlashDecode(const PagedAttentionArgs& a, int splits, void* workspace, cudaStream_t stream);

}  // namespace moed::cuda
