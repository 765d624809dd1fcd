// The OpenAI front end's request parser: a /v1/completions or /v1/chat/completions JSON body → OpenAIRequest.
// Every field is type-checked here and every unknown field is refused by name; ranges are the core validator's
// (CheckRequest) to judge, so both fronts share one set of limits.
#pragma once

#include <cstdint>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "server/core_request.h"

namespace moed::server::openai {

enum class ApiKind { kCompletions, kChat };

inline constexpr int kMaxChoices = 16;  // n

struct OpenAIRequest {
  ApiKind kind = ApiKind::kCompletions;
  std::string model;                 // empty: not sent
  // Completions: exactly one of prompt_text / prompt_ids (prompt_is_ids tells which).
  std::string prompt_text;
  std::vector<int32_t> prompt_ids;
  bool prompt_is_ids = false;
  nlohmann::ordered_json messages;   // chat: [{role, content (a string), ...}], key order kept for the template
  CoreSampling sampling;             // sampling.logprobs: top alternatives per token (the core's meaning)
  bool logprobs = false;             // return the sampled tokens' logprobs (completions: logprobs ≥ 0 sent;
                                     // chat: logprobs true)
  int32_t priority = 0;
  bool include_routing = false;      // "moed": {"include_routing": true}
  int n = 1;
  bool stream = false;
  bool include_usage = false;        // stream_options.include_usage
  bool echo = false;                 // completions: the prompt's text before the completion
  std::string user;
};

// INVALID_ARGUMENT naming the field (and the limit or expected type); the field's name is also attached with
// SetParam, for the error JSON's "param".
absl::StatusOr<OpenAIRequest> ParseOpenAIRequest(ApiKind kind, absl::string_view body);

// The OpenAI "param" of an error (the offending field), carried as a status payload.
absl::Status WithParam(absl::Status status, absl::string_view param);
std::string ParamOf(const absl::Status& status);  // "" when none

}  // namespace moed::server::openai
