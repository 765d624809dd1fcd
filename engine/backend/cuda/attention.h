// Causal GQA attention over the paged KV cache, for prefill chunks and decode tokens alike.
#pragma once

#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace moed::cuda {

struct PagedAttentionArgs {
  const float* q = nullptr;                  // (tokens, num_heads*head_dim) fp32, rotated
  const __nv_bfloat16* k_cache = nullptr;    // (num_blocks*block_size, num_kv_heads*head_dim)
  const __nv_bfloat16* v_cache = nullptr;    // same layout
  const int32_t* positions = nullptr;        // (tokens) position of each query token
  const int32_t* block_tables = nullptr;     // all sequences' block tables back to back
  const int32_t* table_offsets = nullptr;    // (tokens) index in block_tables of the token's sequence table
  // When set: (tokens) the rows to compute, indices into q, positions, table_offsets and out, which are then indexed
  // by row (the other rows are not touched); null: rows 0 .. tokens-1.
  const int32_t* rows = nullptr;
  int tokens = 0, num_heads = 0, num_kv_heads = 0, head_dim = 0;  // head_dim ≤ 256
  int block_size = 16;
  int sliding_window = 0;                    // 0 = full causal; else positions (pos - window, pos]
  float scale = 1.0f;                        // 1/sqrt(head_dim)
  __nv_bfloat16* out = nullptr;              // (tokens, num_heads*head_dim)
};

// Token t attends to positions [lo, positions[t]] of its sequence, whose K/V must already be in the cache
// (this step's K/V are written by LaunchQkNormRope first). Query head h reads KV head h / (heads / kv_heads).
cudaError_t LaunchPagedAttention(const PagedAttentionArgs& a, cudaStream_t stream);

}  // namespace moed::cuda
