// Paged causal GQA attention of the CPU backend over an fp32 KV cache.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/common/thread_pool.h"

namespace moed::cpu {

// One layer's cache: K and V each (num_blocks, block_size, num_kv_heads, head_dim), fp32.
struct KvLayerView {
  float* k = nullptr;
  float* v = nullptr;
  int block_size = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int64_t row_stride() const { return static_cast<int64_t>(num_kv_heads) * head_dim; }
  // Offset (in floats) of position `pos` of a sequence with `block_table`.
  int64_t Offset(const int32_t* block_table, int32_t pos) const {
    return (static_cast<int64_t>(block_table[pos / block_size]) * block_size + pos % block_size) * row_stride();
  }
};

// One query row of the step: its position and the block table of its sequence.
struct QueryRow {
  int32_t pos = 0;
  const int32_t* block_table = nullptr;  // covers [0, pos]
};

// Writes k, v rows (kv_heads*head_dim each) of the step into the cache at each row's position.
void WriteKv(const KvLayerView& kv, const std::vector<QueryRow>& rows, const float* k, const float* v);

// out (rows, num_heads*head_dim) = softmax(q·Kᵀ / sqrt(head_dim)) · V per head, attending to positions
// [max(0, pos - sliding_window + 1), pos] of the row's sequence (sliding_window 0 = all). q (rows, num_heads*head_dim).
// GQA: query head h reads kv head h / (num_heads / num_kv_heads). The cache must already hold K/V for those positions.
void PagedAttention(const KvLayerView& kv, const std::vector<QueryRow>& rows, const float* q, int num_heads,
                    int sliding_window, float* out, ThreadPool* pool);

}  // namespace moed::cpu
