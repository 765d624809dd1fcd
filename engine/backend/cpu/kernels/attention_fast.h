// Vectorised paged causal GQA attention over the fp32 KV cache (same layout and contract as PagedAttention):
// each (row, kv head) work item serves all query heads of its group, so every K/V row is loaded once per group.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/backend/cpu/attention.h"
#include "engine/backend/cpu/kernels/isa.h"
#include "engine/common/thread_pool.h"

namespace moed::cpu {

// out (rows, num_heads*head_dim) = softmax(q·Kᵀ · scale) · V per head over positions
// [max(0, pos - sliding_window + 1), pos] (sliding_window 0 = all); q (rows, num_heads*head_dim). Work items are
// split across `pool` when there is enough of it. Each (row, head) is computed alone: results depend neither on the
// thread count nor on the other rows of the batch.
void PagedAttentionFast(Isa isa, const KvLayerView& kv, const std::vector<QueryRow>& rows, const float* q,
                        int num_heads, int sliding_window, float scale, float* out, ThreadPool* pool);

namespace kernels {

// The arguments shared by every work item of one attention call.
struct AttendArgs {
  KvLayerView kv;
  const QueryRow* rows = nullptr;
  const float* q = nullptr;  // (rows, num_heads*head_dim)
  float* out = nullptr;      // (rows, num_heads*head_dim)
  int num_heads = 0;
  int sliding_window = 0;
  float scale = 0;
};

// Work items [begin, end), item = row * num_kv_heads + kv_head. Scratch: `scores` group × (longest span) floats,
// `inv` group floats.
void AttendScalar(const AttendArgs& a, int64_t begin, int64_t end, float* scores, float* inv);
void AttendAvx2(const AttendArgs& a, int64_t begin, int64_t end, float* scores, float* inv);
void AttendAvx512(const AttendArgs& a, int64_t begin, int64_t end, float* scores, float* inv);

}  // namespace kernels
}  // namespace moed::cpu
