// Attention input prep: q/k/v bias, q/k RMSNorm (per head or whole projection), RoPE, and the paged KV write.
#pragma once

#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace moed::cuda {

enum class QkNormKind { kNone = 0, kPerHead = 1, kFull = 2 };

struct QkRopeArgs {
  const float* qkv = nullptr;  // (tokens, q_dim + 2*kv_dim) fp32: [q | k | v] per row
  const __nv_bfloat16* q_bias = nullptr;  // (q_dim) or null
  const __nv_bfloat16* k_bias = nullptr;  // (kv_dim) or null
  const __nv_bfloat16* v_bias = nullptr;  // (kv_dim) or null
  QkNormKind norm = QkNormKind::kNone;
  const __nv_bfloat16* q_norm = nullptr;  // kPerHead: (head_dim); kFull: (q_dim)
  const __nv_bfloat16* k_norm = nullptr;  // kPerHead: (head_dim); kFull: (kv_dim)
  float eps = 1e-6f;
  const float* inv_freq = nullptr;     // (head_dim / 2) RoPE inverse frequencies, host/rope_table.h
  const int32_t* positions = nullptr;  // (tokens)
  const int64_t* kv_rows = nullptr;    // (tokens) cache row = block_id * block_size + slot
  int tokens = 0, num_heads = 0, num_kv_heads = 0, head_dim = 0;  // head_dim even, ≤ 256
  float* q_out = nullptr;              // (tokens, q_dim) fp32, normalised and rotated
  __nv_bfloat16* k_cache = nullptr;    // (cache_rows, kv_dim): rotated K written at kv_rows[t]
  __nv_bfloat16* v_cache = nullptr;    // (cache_rows, kv_dim)
};

// One block per token. RoPE follows the HF rotate_half convention (pairs i, i + head_dim/2); the angle is
// inv_freq[i] · pos in fp32 and its sine/cosine are taken in double, as on the CPU (moed::ApplyRope).
cudaError_t LaunchQkNormRope(const QkRopeArgs& a, cudaStream_t stream);

}  // namespace moed::cuda
