// Model: a ModelSpec plus typed views of every weight, and the storage (mmap'd shards or an arena) behind them.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/model/model_spec.h"
#include "engine/model/tensor.h"

namespace moed {

// One SwiGLU FFN: down(silu(gate(x)) * up(x)). Mixtral: w1 = gate, w3 = up, w2 = down.
struct FfnWeights {
  TensorView gate;  // (ffn, hidden)
  TensorView up;    // (ffn, hidden)
  TensorView down;  // (hidden, ffn)
};

struct LayerWeights {
  TensorView input_norm;      // (hidden)
  TensorView q_proj;          // (num_heads*head_dim, hidden)
  TensorView k_proj;          // (num_kv_heads*head_dim, hidden)
  TensorView v_proj;          // (num_kv_heads*head_dim, hidden)
  TensorView o_proj;          // (hidden, num_heads*head_dim)
  TensorView q_bias, k_bias, v_bias;  // (q_dim) / (kv_dim) — qwen2_moe only
  TensorView q_norm, k_norm;  // QkNorm::kPerHead: (head_dim); kFull: (q_dim) / (kv_dim)
  TensorView post_attn_norm;  // (hidden)

  // MoE layers (spec.layer_is_moe[l]):
  TensorView router;                // (num_experts, hidden)
  std::vector<FfnWeights> experts;  // num_experts entries, each of width moe_intermediate_size
  FfnWeights shared_expert;         // qwen2_moe: width shared_expert_intermediate_size
  TensorView shared_expert_gate;    // qwen2_moe: (1, hidden)
  // Dense layers (not layer_is_moe[l]): one FFN of width dense_intermediate_size.
  FfnWeights dense_mlp;
};

struct ModelWeights {
  TensorView embed;        // (vocab, hidden)
  std::vector<LayerWeights> layers;
  TensorView final_norm;   // (hidden)
  TensorView lm_head;      // (vocab, hidden); equals embed when tie_word_embeddings
};

// Owns the bytes behind the views (shard mappings or generated buffers). Immutable after load;
// safe to share between threads.
class Model {
 public:
  ModelSpec spec;
  ModelWeights weights;
  std::string source;  // directory it was loaded from, or "synthetic:<name>"

  // Keeps storage alive; the loader puts mmap'd files or arenas here.
  std::vector<std::shared_ptr<const void>> storage;
};

// Loads <dir>/config.json and the safetensors weights (single file or sharded via
// model.safetensors.index.json), mmap'd. Every tensor the spec needs is checked for presence,
// shape and dtype; errors name the file, the tensor, and expected vs found.
absl::StatusOr<std::shared_ptr<const Model>> LoadModel(const std::string& model_dir);

}  // namespace moed
