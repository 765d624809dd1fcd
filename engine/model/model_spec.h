// ModelSpec: everything the engine needs to know about an MoE architecture, parsed from config.json.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace moed {

enum class Family { kMixtral, kQwen2Moe, kQwen3Moe, kOlmoe };
std::string_view FamilyName(Family f);  // the config's model_type: "mixtral", "qwen2_moe", ...

// How q/k are normalised after projection (before RoPE).
enum class QkNorm {
  kNone,     // mixtral, qwen2_moe
  kPerHead,  // qwen3_moe: RMSNorm over head_dim, weight (head_dim)
  kFull,     // olmoe: RMSNorm over the whole projection, weight (n_heads*head_dim) / (n_kv_heads*head_dim)
};

struct ModelSpec {
  Family family = Family::kMixtral;
  int vocab_size = 0;
  int hidden_size = 0;            // d_model
  int num_layers = 0;
  int num_heads = 0;              // query heads
  int num_kv_heads = 0;           // GQA: num_heads % num_kv_heads == 0
  int head_dim = 0;               // config head_dim, else hidden_size / num_heads
  int max_position_embeddings = 0;
  float rms_norm_eps = 1e-6f;
  float rope_theta = 10000.0f;    // rope_parameters.rope_theta (transformers 5) or top-level rope_theta
  int sliding_window = 0;         // attend to the last `sliding_window` positions only; 0 = full causal

  // MoE block.
  int num_experts = 0;            // num_local_experts (mixtral, sometimes others) or num_experts
  int top_k = 0;                  // num_experts_per_tok
  bool norm_topk_prob = true;     // renormalise the top-k weights to sum to 1 (always for mixtral)
  int moe_intermediate_size = 0;  // per-expert FFN width (mixtral: intermediate_size)
  int shared_expert_intermediate_size = 0;  // qwen2_moe shared expert with sigmoid gate; 0 = none
  // Dense (non-MoE) layers, qwen2/3_moe: mlp_only_layers and decoder_sparse_step. Width intermediate_size.
  std::vector<bool> layer_is_moe;  // size num_layers
  int dense_intermediate_size = 0;

  // Attention details.
  bool qkv_bias = false;          // qwen2_moe
  QkNorm qk_norm = QkNorm::kNone;
  bool tie_word_embeddings = false;

  // Special tokens from config.json (the tokenizer may add more EOS ids from generation_config.json).
  std::optional<int> bos_token_id;
  std::vector<int> eos_token_ids;

  int q_dim() const { return num_heads * head_dim; }
  // Routed experts of the whole model: MoE layers × num_experts (what a hot-expert cache can hold).
  int num_routed_experts() const {
    int moe_layers = 0;
    for (bool moe : layer_is_moe) moe_layers += moe ? 1 : 0;
    return moe_layers * num_experts;
  }
  int kv_dim() const { return num_kv_heads * head_dim; }
};

// Parses a config.json text. `source` names the file in errors ("…/config.json: missing field 'hidden_size'").
// Accepts both spellings: rope_parameters.rope_theta (transformers 5) or top-level rope_theta;
// num_local_experts or num_experts.
absl::StatusOr<ModelSpec> ParseModelConfig(std::string_view json_text, std::string_view source);

// Reads <dir>/config.json and parses it.
absl::StatusOr<ModelSpec> LoadModelSpec(const std::string& model_dir);

}  // namespace moed
