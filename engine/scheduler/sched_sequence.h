// SchedSequence: what the scheduler knows about one sequence — its rank and how many tokens are known/computed.
#pragma once

#include <cstdint>

#include "absl/time/time.h"

namespace moed {

struct SchedSequence {
  int64_t id = 0;
  int32_t priority = 0;                          // lower runs first
  absl::Time arrival_time = absl::InfinitePast();
  uint64_t arrival_seq = 0;                      // order of Add() calls; breaks ties (FIFO)
  int32_t num_tokens = 0;    // known tokens: prompt + generated so far
  int32_t num_computed = 0;  // tokens whose KV is cached, counting chunks already scheduled
  int32_t prefill_end = 0;   // num_tokens when last admitted: positions below it are prefill
  bool running = false;
  int32_t num_preemptions = 0;

  bool prefill_done() const { return num_computed >= prefill_end; }
};

}  // namespace moed
