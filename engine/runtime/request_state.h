// RequestState: what EngineCore keeps for one live request between steps.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "engine/runtime/engine_core.h"
#include "engine/runtime/output_processor.h"

namespace moed {

struct RequestState {
  EngineRequest request;
  int64_t seq_id = 0;               // the scheduler's and KV manager's id
  std::vector<int32_t> tokens;      // prompt, then generated tokens
  int32_t generated = 0;            // also the sampler's sample_index for the next token
  std::unique_ptr<OutputProcessor> output;
  std::vector<int32_t> routing;     // (layers * experts) when include_routing; reset on preemption
  bool abort_requested = false;
};

}  // namespace moed
