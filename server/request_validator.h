// The one validator of generation requests: every front end's CoreRequest is checked here, bytes before
// tokens, and turned into an EngineRequest after tokenization. Sampling ranges are the engine's own rule
// (moed::ValidateSamplingParams); the server adds its limits on top.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/runtime/engine_core.h"
#include "engine/tokenizer/tokenizer.h"
#include "server/core_request.h"

namespace moed::server {

inline constexpr int kMaxRequestIdBytes = 256;

struct RequestLimits {
  int vocab_size = 0;
  int context_length = 0;       // prompt + completion tokens
  int max_tokens_limit = 0;     // largest explicit max_tokens (≤ context_length)
  int default_max_tokens = 16;  // used when max_tokens is unset (clamped to what the context leaves)
  int max_stop_strings = 8;
  int max_stop_length = 64;     // bytes
  int max_logprobs = 20;
  int64_t max_prompt_bytes = 1 << 20;  // see PromptByteCap
};

// The longest prompt, in bytes, that can still fit `context_length` tokens: every token stands for at most
// as many input bytes as its longest vocabulary entry, so a longer prompt needs more tokens than the context
// holds. `flag_bytes` > 0 (--max-prompt-bytes) lowers it further.
int64_t PromptByteCap(int context_length, const Tokenizer& tokenizer, int64_t flag_bytes);

// Everything that can be checked before tokenizing, in order of cost: request_id, prompt bytes,
// prompt_ids, sampling, stop strings, max_tokens range, priority. INVALID_ARGUMENT naming the field and
// the limit; PERMISSION_DENIED for a priority below 0 from a caller that is not admin.
absl::Status CheckRequest(const CoreRequest& request, const RequestLimits& limits, const Caller& caller);

// After CheckRequest and tokenization (`prompt_ids` = the request's own ids, or its prompt encoded):
// the EngineRequest with defaults applied (`default_seed` when no seed is given). Fails when the prompt is
// empty or leaves no room for max_tokens in the context. request_id, arrival_time and deadline are the
// caller's to set.
absl::StatusOr<EngineRequest> ToEngineRequest(const CoreRequest& request, std::vector<int32_t> prompt_ids,
                                              const RequestLimits& limits, uint64_t default_seed);

}  // namespace moed::server
