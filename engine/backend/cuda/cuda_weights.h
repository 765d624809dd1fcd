// Model weights on the device: bf16, one arena; q/k/v and each FFN's gate/up stored concatenated for one GEMM each.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "absl/status/statusor.h"
#include "engine/backend/cuda/device_buffer.h"
#include "engine/model/model.h"

namespace moed::cuda {

using bf16 = __nv_bfloat16;

struct DeviceFfn {
  const bf16* gate_up = nullptr;  // (2*ffn, hidden): gate rows then up rows
  const bf16* down = nullptr;     // (hidden, ffn)
  int ffn = 0;                    // 0 = absent
};

struct DeviceLayer {
  const bf16* input_norm = nullptr;  // (hidden)
  const bf16* qkv = nullptr;         // (q_dim + 2*kv_dim, hidden)
  const bf16* q_bias = nullptr;      // (q_dim) or null
  const bf16* k_bias = nullptr;      // (kv_dim) or null
  const bf16* v_bias = nullptr;      // (kv_dim) or null
  const bf16* q_norm = nullptr;      // (head_dim) or (q_dim) or null
  const bf16* k_norm = nullptr;      // (head_dim) or (kv_dim) or null
  const bf16* o_proj = nullptr;      // (hidden, q_dim)
  const bf16* post_attn_norm = nullptr;  // (hidden)
  const bf16* router = nullptr;      // (num_experts, hidden); MoE layers only
  std::vector<DeviceFfn> experts;    // num_experts; MoE layers only
  DeviceFfn shared_expert;           // qwen2_moe
  const bf16* shared_expert_gate = nullptr;  // (1, hidden) or null
  DeviceFfn dense;                   // dense layers only
};

struct DeviceWeights {
  const bf16* embed = nullptr;       // (vocab, hidden)
  const bf16* final_norm = nullptr;  // (hidden)
  const bf16* lm_head = nullptr;     // (vocab, hidden)
  std::vector<DeviceLayer> layers;
  int64_t bytes = 0;                 // device bytes of the arena
  DeviceBuffer arena;
};

// Copies (converting to bf16 where the checkpoint is f16/f32) every weight of `model` to the device. Absent large
// tensors of a synthetic model are generated on the device. Not enough free device memory → RESOURCE_EXHAUSTED with
// the bytes needed and free. Every copy and fill runs on `stream` (host data staged through pinned buffers in large
// chunks); returns once they are done.
absl::StatusOr<std::unique_ptr<DeviceWeights>> UploadWeights(const Model& model, cudaStream_t stream);

}  // namespace moed::cuda
