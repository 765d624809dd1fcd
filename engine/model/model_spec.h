// ModelSpec: an MoE architecture as per-layer kinds (attention GQA|MLA, MLP dense|MoE, router spec), from config.json.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace moed {

enum class Family { kMixtral, kQwen2Moe, kQwen3Moe, kOlmoe, kDeepseekV2, kDeepseekV3 };
std::string_view FamilyName(Family f);  // the config's model_type: "mixtral", "qwen2_moe", "deepseek_v3", ...

// ---- Attention ----

enum class AttentionKind {
  kGqa,  // q/k/v projections, K and V cached per kv head (MHA and MQA are GQA's edge cases)
  kMla,  // multi-head latent attention (DeepSeek-V2/V3): a compressed KV latent + one shared rope key are cached
};

// How q/k are normalised after projection (before RoPE).
enum class QkNorm {
  kNone,     // mixtral, qwen2_moe, deepseek (MLA normalises its latents instead)
  kPerHead,  // qwen3_moe: RMSNorm over head_dim, weight (head_dim)
  kFull,     // olmoe: RMSNorm over the whole projection, weight (n_heads*head_dim) / (n_kv_heads*head_dim)
};

enum class RopeType { kDefault, kLinear, kDynamic, kYarn };

// Rotary position embedding, transformers' conventions (rope_parameters / rope_scaling).
struct RopeSpec {
  RopeType type = RopeType::kDefault;
  float theta = 10000.0f;
  int dim = 0;               // rotated dims: the LAST `dim` dims of each q/k head (all of it for GQA)
  bool interleave = false;   // true: pairs (2i, 2i+1) (DeepSeek's complex form); false: pairs (i, i + dim/2)
  float factor = 1.0f;       // linear / dynamic / yarn scaling factor
  int original_max_position = 0;  // yarn / dynamic: the pre-extension context length
  float beta_fast = 32.0f, beta_slow = 1.0f;  // yarn ramp bounds (rotations)
  float mscale = 0.0f, mscale_all_dim = 0.0f; // yarn (DeepSeek): attention factor and softmax-scale correction
  float attention_factor = 1.0f;  // yarn: cos/sin are multiplied by this (derived at parse time)
};

// One layer's attention. Head layout of q and k: [nope (qk_head_dim − rope.dim) | rope (rope.dim)].
struct AttentionSpec {
  AttentionKind kind = AttentionKind::kGqa;
  int num_heads = 0;        // query heads
  int num_kv_heads = 0;     // GQA: num_heads % num_kv_heads == 0; MLA: num_heads (K/V expanded per head)
  int head_dim = 0;         // GQA: q/k/v head size (config head_dim, else hidden / heads); MLA: qk_head_dim
  int qk_head_dim = 0;      // q·k dot length per head (GQA: head_dim; MLA: qk_nope_head_dim + qk_rope_head_dim)
  int v_head_dim = 0;       // value / output head size (GQA: head_dim; MLA: v_head_dim)
  // MLA only.
  int q_lora_rank = 0;      // 0: q_proj directly (V2-Lite); else q_a_proj → q_a_layernorm → q_b_proj
  int kv_lora_rank = 0;     // width of the compressed KV latent (cached)
  // GQA details.
  bool qkv_bias = false;    // qwen2_moe
  QkNorm qk_norm = QkNorm::kNone;
  int sliding_window = 0;   // attend to the last `sliding_window` positions only; 0 = full causal
  float softmax_scale = 0;  // scores = q·k · softmax_scale (1/sqrt(qk_head_dim), times yarn's mscale² for DeepSeek)
  RopeSpec rope;

  int q_dim() const { return num_heads * qk_head_dim; }         // q projection width
  int kv_dim() const { return num_kv_heads * qk_head_dim; }     // GQA k (and v) projection width
  int o_dim() const { return num_heads * v_head_dim; }          // attention output width (o_proj input)
  int nope_dim() const { return qk_head_dim - rope.dim; }
  // Floats cached per token per layer: GQA K and V; MLA the latent and the rope key.
  int64_t kv_cache_width() const {
    return kind == AttentionKind::kMla ? static_cast<int64_t>(kv_lora_rank) + rope.dim
                                       : 2 * static_cast<int64_t>(num_kv_heads) * head_dim;
  }
};

// ---- MLP ----

enum class MlpKind { kDense, kMoe };

enum class RouterScoring { kSoftmax, kSigmoid };
enum class TopKMethod {
  kGreedy,              // top-k over all experts' scores
  kGroupLimitedGreedy,  // DeepSeek-V2: keep the topk_group groups with the largest max score, top-k inside them
  kNoauxTc,             // DeepSeek-V3: groups ranked by the sum of their top-2 (biased) scores; bias for selection only
};

// How a MoE layer's router turns logits into (expert, weight) pairs. num_experts/top_k live in ModelSpec.
struct RouterSpec {
  RouterScoring scoring = RouterScoring::kSoftmax;
  TopKMethod method = TopKMethod::kGreedy;
  int num_groups = 1;         // n_group: experts split into equal consecutive groups
  int topk_groups = 1;        // topk_group: groups kept per token
  bool norm_topk_prob = true; // renormalise the chosen weights to sum to 1
  float routed_scaling_factor = 1.0f;  // chosen weights are multiplied by this (after renormalisation)
  bool selection_bias = false;  // a per-expert bias (e_score_correction_bias) added to scores for choosing only
};

// Experts every token of a MoE layer runs besides the routed ones (qwen2_moe, DeepSeek).
struct SharedExpertSpec {
  int count = 0;              // 0 = none; DeepSeek n_shared_experts (fused into one FFN of count × width)
  int intermediate_size = 0;  // the fused FFN's width
  bool gated = false;         // qwen2_moe: output × sigmoid(shared_expert_gate · x)
};

struct ModelSpec {
  Family family = Family::kMixtral;
  int vocab_size = 0;
  int hidden_size = 0;            // d_model
  int num_layers = 0;
  int max_position_embeddings = 0;
  float rms_norm_eps = 1e-6f;
  bool tie_word_embeddings = false;

  AttentionSpec attention;        // every layer's attention (no supported family mixes kinds across layers)

  // Per layer: dense FFN or MoE. From first_k_dense_replace / mlp_only_layers / decoder_sparse_step / moe_layer_freq.
  std::vector<bool> layer_is_moe;  // size num_layers
  int dense_intermediate_size = 0; // width of the dense layers' FFN

  // MoE layers.
  int num_experts = 0;             // routed experts per MoE layer
  int top_k = 0;                   // routed experts per token
  int moe_intermediate_size = 0;   // per-expert FFN width
  RouterSpec router;
  SharedExpertSpec shared_experts;

  // Special tokens from config.json (the tokenizer may add more EOS ids from generation_config.json).
  std::optional<int> bos_token_id;
  std::vector<int> eos_token_ids;

  MlpKind mlp_kind(int layer) const { return layer_is_moe[layer] ? MlpKind::kMoe : MlpKind::kDense; }
  // Routed experts of the whole model: MoE layers × num_experts (what a hot-expert cache can hold).
  int num_routed_experts() const {
    int moe_layers = 0;
    for (bool moe : layer_is_moe) moe_layers += moe ? 1 : 0;
    return moe_layers * num_experts;
  }
  // Floats the KV cache holds per token, all layers.
  int64_t kv_cache_floats_per_token() const { return attention.kv_cache_width() * num_layers; }
};

// Parses a config.json text. `source` names the file in errors ("…/config.json: missing field 'hidden_size'").
// Accepts both spellings: rope_parameters (transformers 5) or top-level rope_theta / rope_scaling;
// num_local_experts, num_experts or n_routed_experts.
absl::StatusOr<ModelSpec> ParseModelConfig(std::string_view json_text, std::string_view source);

// Reads <dir>/config.json and parses it.
absl::StatusOr<ModelSpec> LoadModelSpec(const std::string& model_dir);

}  // namespace moed
