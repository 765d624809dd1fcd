// Checks a GenerateRequest against the server's limits and turns it into an EngineRequest.
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"
#include "engine/runtime/engine_core.h"
#include "engine/tokenizer/tokenizer.h"
#include "moed/v1/moed.pb.h"

namespace moed::server {

struct RequestLimits {
  int vocab_size = 0;
  int context_length = 0;       // prompt + completion tokens
  int max_tokens_limit = 0;     // largest explicit max_tokens (≤ context_length)
  int default_max_tokens = 16;  // used when max_tokens is unset (clamped to what the context leaves)
  int max_stop_strings = 8;
  int max_stop_length = 64;     // bytes
  int max_logprobs = 20;
  int64_t max_prompt_bytes = 1 << 20;
};

// INVALID_ARGUMENT naming the field and the limit for any bad field; otherwise the EngineRequest with
// the prompt tokenized (or the given ids), defaults applied (temperature 1, top_p 1, `default_seed`
// when no seed is given). request_id, arrival_time and deadline are left for the caller.
absl::StatusOr<EngineRequest> ValidateGenerateRequest(const v1::GenerateRequest& request,
                                                      const RequestLimits& limits, const Tokenizer& tokenizer,
                                                      uint64_t default_seed);

}  // namespace moed::server
