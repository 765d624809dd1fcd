// Paged causal GQA attention of the CPU backend over an fp32 KV cache, and RoPE over the heads of a row.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/common/thread_pool.h"
#include "engine/model/model_spec.h"

namespace moed::cpu {

// One layer's GQA cache: per token a row of `row_stride` floats holding K (num_kv_heads, head_dim) at `k` and V
// (num_kv_heads, head_dim) at `v` (k and v point into the same (num_blocks, block_size, row_stride) array).
struct KvLayerView {
  float* k = nullptr;
  float* v = nullptr;
  int block_size = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int64_t row_stride = 0;  // floats between consecutive tokens
  int64_t kv_width() const { return static_cast<int64_t>(num_kv_heads) * head_dim; }
  // Offset (in floats) of position `pos` of a sequence with `block_table`.
  int64_t Offset(const int32_t* block_table, int32_t pos) const {
    return (static_cast<int64_t>(block_table[pos / block_size]) * block_size + pos % block_size) * row_stride;
  }
};

// One query row of the step: its position and the block table of its sequence.
struct QueryRow {
  int32_t pos = 0;
  const int32_t* block_table = nullptr;  // covers [0, pos]
};

// Writes k, v rows (kv_heads*head_dim each) of the step into the cache at each row's position.
void WriteKv(const KvLayerView& kv, const std::vector<QueryRow>& rows, const float* k, const float* v);

// out (rows, num_heads*head_dim) = softmax(q·Kᵀ · scale) · V per head, attending to positions
// [max(0, pos - sliding_window + 1), pos] of the row's sequence (sliding_window 0 = all). q (rows, num_heads*head_dim).
// GQA: query head h reads kv head h / (num_heads / num_kv_heads). The cache must already hold K/V for those positions.
void PagedAttention(const KvLayerView& kv, const std::vector<QueryRow>& rows, const float* q, int num_heads,
                    int sliding_window, float scale, float* out, ThreadPool* pool);

// cos, then sin (rope.dim / 2 each) of position `pos` into *cs, shared by every head rotated at that position.
// `inv_freq` (rope.dim / 2) is the table for positions within the original context (RopeInvFreq(rope)); dynamic NTK
// past it uses the table of this position.
void RopeCosSinAt(const RopeSpec& rope, const std::vector<float>& inv_freq, int32_t pos, std::vector<float>* cs);
// Rotates the rope part (the last rope.dim floats) of `heads` head vectors of `head_dim` floats starting at x by cs
// (RopeCosSinAt of their position).
void RotateHeads(const RopeSpec& rope, const std::vector<float>& cs, float* x, int heads, int head_dim);

// The step's q (rows, q_dim) and k (rows, kv_dim) after their projections: the spec's q/k RMSNorm (per head or over
// the whole row; q_norm / k_norm unused when the spec has none), then RoPE at each row's position. Both backends'
// GQA layers.
void NormAndRotateQk(const AttentionSpec& a, const float* q_norm, const float* k_norm, float eps,
                     const std::vector<float>& inv_freq, const std::vector<QueryRow>& rows, float* q, float* k);

}  // namespace moed::cpu
