// Multi-head latent attention (DeepSeek-V2/V3) of the CPU backend over a latent paged cache.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/backend/cpu/attention.h"
#include "engine/backend/cpu/cpu_weights.h"
#include "engine/common/thread_pool.h"
#include "engine/model/model_spec.h"

namespace moed::cpu {

// One layer's MLA cache: (num_blocks, block_size, kv_lora_rank + rope.dim) fp32; per token the normalised KV latent
// (kv_a_layernorm(c_kv), kv_lora_rank) then the rotated shared rope key (rope.dim).
struct MlaCacheView {
  float* data = nullptr;
  int block_size = 0;
  int width = 0;  // kv_lora_rank + rope.dim
  int64_t Offset(const int32_t* block_table, int32_t pos) const {
    return (static_cast<int64_t>(block_table[pos / block_size]) * block_size + pos % block_size) * width;
  }
};

// MLA for the rows of one step (rows of one sequence are consecutive and share its block table).
//   h    (rows, hidden)          input-normalised hidden states
//   out  (rows, heads * v_head_dim)  attention output, before o_proj
// Writes each row's latent and rope key into the cache at its position, then, per sequence, expands the cached
// latents of positions [0, last row's position] through kv_b_proj into per-head K (nope | rope) and V — the
// reference form, as transformers computes it — and attends causally with a.softmax_scale.
void MlaAttention(const AttentionSpec& a, const CpuLayer& w, float eps, const std::vector<float>& inv_freq,
                  const MlaCacheView& cache, const std::vector<QueryRow>& rows, const float* h, int hidden,
                  float* out, ThreadPool* pool);

}  // namespace moed::cpu
