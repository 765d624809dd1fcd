// RoPE of the model definition: config parsing (rope_parameters / rope_scaling spellings) and the inverse
// frequencies of every RopeType, as transformers computes them (float32).
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/model/json_fields.h"
#include "engine/model/model_spec.h"

namespace moed {

// Reads the RoPE of a config: `rope_parameters` (transformers 5: rope_theta inside, rope_type) or the hub's
// top-level `rope_theta` + `rope_scaling` (`type` or `rope_type`). Types: default, linear, dynamic, yarn; any other
// → UNIMPLEMENTED naming the field. `dim` = rotated dims per head, `max_position` = max_position_embeddings (yarn's
// original length when the config names none). Errors name the field.
absl::StatusOr<RopeSpec> ParseRopeSpec(const JsonFields& cfg, std::string_view source, double default_theta, int dim,
                                       int max_position);

// yarn_get_mscale: 1 for scale ≤ 1, else 0.1 · mscale · ln(scale) + 1.
float YarnMscale(float scale, float mscale);

// The rope.dim / 2 inverse frequencies at sequence length `seq_len` (only RopeType::kDynamic depends on it: above
// original_max_position the base grows as transformers' dynamic NTK; we take seq_len = position + 1 per token).
std::vector<float> RopeInvFreq(const RopeSpec& rope, int64_t seq_len = 0);

// Rotates one head's rope part v (rope.dim floats) at `pos`: pairs (i, i + dim/2), or (2i, 2i+1) when interleave,
// by angle inv_freq[i] · pos; cos and sin are multiplied by rope.attention_factor.
void ApplyRope(const RopeSpec& rope, const float* inv_freq, int32_t pos, float* v);

// ApplyRope in two parts, for rotating many heads at one position: cos and sin (rope.dim / 2 each) of `pos`, already
// multiplied by rope.attention_factor; then the rotation of one head by them. Together bitwise equal to ApplyRope.
void RopeCosSin(const RopeSpec& rope, const float* inv_freq, int32_t pos, float* cos, float* sin);
void ApplyRopeCosSin(const RopeSpec& rope, const float* cos, const float* sin, float* v);

}  // namespace moed
