// Request: the one object EngineCore keeps per live request — what was asked, its tokens, scheduler state and KV
// blocks (the SchedSequence it extends), output state and timings.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "engine/runtime/engine_request.h"
#include "engine/runtime/output_processor.h"
#include "engine/scheduler/sched_sequence.h"

namespace moed {

// Owned by EngineCore (one unique_ptr per live request); the scheduler borrows it as a SchedSequence from Add to
// Remove. SchedSequence::tokens holds the prompt (moved out of params.prompt_ids) then every sampled token.
struct Request : SchedSequence {
  EngineRequest params;                     // as submitted, prompt_ids moved into tokens
  int32_t prompt_len = 0;
  int32_t generated = 0;                    // also the sampler's sample_index for the next token
  std::unique_ptr<OutputProcessor> output;  // detokenizer and stop strings
  std::vector<int32_t> routing;             // (layers * experts) when include_routing; reset on preemption
  int32_t cached_tokens = -1;               // prompt tokens served from the prefix cache at the first admission
                                            // (-1 before it)
  bool abort_requested = false;
  absl::Status abort_status;                // why (AbortRequest / AbortAll); reported with kAborted
  // Timings (the engine's clock).
  absl::Time first_scheduled = absl::InfinitePast();  // first admission
  absl::Time first_token = absl::InfinitePast();      // first sampled token

  const std::string& request_id() const { return params.request_id; }
};

}  // namespace moed
