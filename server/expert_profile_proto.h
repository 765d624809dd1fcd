// The engine's ExpertProfileSnapshot as a GetExpertProfile answer.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "engine/model/model_spec.h"
#include "engine/moe/expert_profile.h"
#include "engine/tokenizer/tokenizer.h"
#include "moed/v1/moed.pb.h"

namespace moed::server {

inline constexpr int kDefaultProfileTopN = 10;

// INVALID_ARGUMENT for top_n outside [0, kProfileSketchCapacity] (0 = kDefaultProfileTopN); UNAVAILABLE when
// `snapshot` is null (an engine without a profiler).
absl::Status FillExpertProfile(const ExpertProfileSnapshot* snapshot, const ModelSpec& spec, const Tokenizer& tok,
                               int top_n, v1::ExpertProfile* out);

// A token's bytes as valid UTF-8: whole characters kept, other bytes written <0xNN>.
std::string PrintableTokenText(const std::string& bytes);

}  // namespace moed::server
