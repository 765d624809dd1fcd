// A model family = its config parser + its weight-name map. The registry of supported families and the parsing
// helpers several of them share. Internal to engine/model (config_parser.cc and model_loader.cc use it).
#pragma once

#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "engine/model/json_fields.h"
#include "engine/model/model.h"
#include "engine/model/model_spec.h"
#include "engine/model/weight_binder.h"

namespace moed {

struct FamilyDef {
  Family family;
  std::string_view model_type;  // config.json "model_type"
  double default_rope_theta;    // transformers' default when the config names none
  double default_rms_norm_eps;
  // Reads the family's fields into `spec`: attention (kind, shape, RoPE), MoE block, dense/MoE pattern. The common
  // fields (vocab, hidden, layers, positions, eps, special tokens, tie) are set before. Errors name the field.
  absl::Status (*parse)(const JsonFields& cfg, std::string_view source, ModelSpec& spec);
  // The weight-name map: binds everything of layer `l` except its two RMSNorms (common), under prefix `p`
  // ("model.layers.<l>."), checking shapes.
  absl::Status (*bind_layer)(const WeightBinder& b, const ModelSpec& spec, int l, const std::string& p,
                             LayerWeights& w);
};

// The family whose model_type is `model_type`, or nullptr.
const FamilyDef* FindFamily(std::string_view model_type);
const FamilyDef& FamilyDefOf(Family family);
std::vector<std::string_view> SupportedModelTypes();

// The families (one file each).
extern const FamilyDef kMixtralFamily, kQwen2MoeFamily, kQwen3MoeFamily, kOlmoeFamily, kDeepseekV2Family,
    kDeepseekV3Family;

namespace family {

// GQA shape: num_attention_heads, num_key_value_heads (default: heads), head_dim (default hidden / heads);
// RoPE over the whole head (rope_parameters / rope_theta / rope_scaling).
absl::Status ParseGqaAttention(const JsonFields& cfg, std::string_view source, double default_theta,
                               ModelSpec& spec);
// The routed-expert count under any of `keys` (all given ones must agree; none → `missing_key` is missing) and
// num_experts_per_tok ≤ it.
absl::Status ParseExperts(const JsonFields& cfg, std::string_view missing_key,
                          std::initializer_list<std::string_view> keys, ModelSpec& spec);
// Qwen's pattern: a layer is MoE unless listed in mlp_only_layers, and when (l + 1) % decoder_sparse_step == 0.
absl::Status ParseSparseStep(const JsonFields& cfg, ModelSpec& spec);
// Rejects attention_bias: true (o_proj bias unsupported).
absl::Status RejectAttentionBias(const JsonFields& cfg);

}  // namespace family
}  // namespace moed
