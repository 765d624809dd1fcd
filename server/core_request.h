// CoreRequest: a generation request as every front end (gRPC, HTTP) hands it to the core — protocol-neutral,
// not yet validated, the prompt not yet tokenized. Caller: who sent it, as the front end authenticated it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace moed::server {

// Unset optionals take the server's defaults (temperature 1, top_p 1, a server-chosen seed,
// --default-max-tokens clamped to what the context leaves).
struct CoreSampling {
  std::optional<float> temperature;
  std::optional<float> top_p;
  int32_t top_k = 0;
  std::optional<uint64_t> seed;
  std::optional<int32_t> max_tokens;
  std::vector<std::string> stop;
  bool ignore_eos = false;
  int32_t logprobs = 0;  // top alternatives per token; 0 = no logprobs at all
};

struct CoreRequest {
  std::string client_id;              // the client's request_id; may be empty
  std::string prompt;                 // exactly one of prompt / prompt_ids
  std::vector<int32_t> prompt_ids;
  CoreSampling sampling;
  int32_t priority = 0;               // lower is served first; < 0 needs an admin caller
  bool include_routing = false;
  absl::Time deadline = absl::InfiniteFuture();
};

struct Caller {
  bool admin = false;  // may use priority < 0 (an admin token, or no --auth-token-file at all)
};

}  // namespace moed::server
