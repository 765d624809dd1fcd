// EngineRequest: one generation request as the engine takes it (already tokenized), and how requests finish.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"
#include "engine/runtime/sampling_params.h"

namespace moed {

enum class FinishReason { kNone, kLength, kStop, kEos, kAborted, kDeadline, kError };
std::string_view FinishReasonName(FinishReason r);  // "length", "stop", "eos", "aborted", "deadline", "error"

// What a front end keeps per request (the server: the stream's outbox and its delivery timings), attached to the
// request so the engine's Request is the one object per request. The engine never looks inside: it hands the slot
// back on every RequestOutput of the request and drops its reference when the request finishes.
struct FrontendSlot {
  virtual ~FrontendSlot() = default;
};

struct EngineRequest {
  std::string request_id;          // unique among live requests
  std::vector<int32_t> prompt_ids; // already tokenized, non-empty, ids < vocab
  SamplingParams sampling;
  int32_t max_tokens = 16;         // ≥ 1; prompt + max_tokens ≤ context
  std::vector<std::string> stop;   // stop strings: generation ends before them; they are not emitted
  bool ignore_eos = false;
  int32_t priority = 0;            // lower runs first (as vLLM); FIFO within a priority
  bool include_routing = false;    // report this request's expert usage on its last output
  absl::Time arrival_time = absl::InfinitePast();
  absl::Time deadline = absl::InfiniteFuture();  // passed while queued → finished kDeadline, never prefilled
  std::shared_ptr<FrontendSlot> frontend;          // optional; see FrontendSlot
};

}  // namespace moed
