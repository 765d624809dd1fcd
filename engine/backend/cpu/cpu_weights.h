// fp32 copies of a Model's weights, converted once when the CPU backend is created.
#pragma once

#include <vector>

#include "absl/status/statusor.h"
#include "engine/model/model.h"

namespace moed::cpu {

using Floats = std::vector<float>;  // empty = absent

struct CpuFfn {
  int width = 0;  // intermediate size
  Floats gate;    // (width, hidden)
  Floats up;      // (width, hidden)
  Floats down;    // (hidden, width)
};

struct CpuLayer {
  Floats input_norm;                // (hidden)
  Floats q_proj, k_proj, v_proj;    // (q_dim, hidden), (kv_dim, hidden), (kv_dim, hidden)
  Floats o_proj;                    // (hidden, q_dim)
  Floats q_bias, k_bias, v_bias;    // (q_dim), (kv_dim), (kv_dim) when spec.qkv_bias
  Floats q_norm, k_norm;            // (head_dim) per-head or (q_dim)/(kv_dim) full, when spec.qk_norm
  Floats post_attn_norm;            // (hidden)
  bool is_moe = false;
  Floats router;                    // (num_experts, hidden)
  std::vector<CpuFfn> experts;      // num_experts
  CpuFfn shared_expert;             // width 0 when absent
  Floats shared_expert_gate;        // (hidden) when shared_expert
  CpuFfn dense_mlp;                 // non-MoE layers
};

struct CpuWeights {
  Floats embed;   // (vocab, hidden)
  std::vector<CpuLayer> layers;
  Floats final_norm;  // (hidden)
  Floats lm_head;     // (vocab, hidden)
};

// Converts every weight the spec needs to fp32, checking presence and element counts.
// Errors name the tensor and expected vs found sizes.
absl::StatusOr<CpuWeights> ConvertWeights(const Model& model);

}  // namespace moed::cpu
