// SchedSequence: what the scheduler and the KV manager own of a request — rank, tokens, progress, KV blocks. The
// engine's Request object extends it (engine/runtime/request.h), so one object holds all of a request's state.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/time/time.h"
#include "engine/kv/kv_block_manager.h"

namespace moed {

struct SchedSequence {
  int64_t id = 0;                                // unique among live sequences; names it in plans and logs
  int32_t priority = 0;                          // lower runs first
  absl::Time arrival_time = absl::InfinitePast();
  uint64_t arrival_seq = 0;                      // order of Scheduler::Add calls; breaks ties (FIFO)
  std::vector<int32_t> tokens;                   // prompt, then every sampled token (the caller appends them)
  int32_t num_computed = 0;  // tokens whose KV is cached, counting chunks already scheduled
  int32_t prefill_end = 0;   // num_tokens() when last admitted: positions below it are prefill
  int32_t num_cached = 0;    // of them, taken from the prefix cache at that admission (whole blocks)
  bool running = false;
  int32_t num_preemptions = 0;
  KvSequence kv;             // its blocks; changed only by the scheduler through KvBlockManager

  int32_t num_tokens() const { return static_cast<int32_t>(tokens.size()); }
  bool prefill_done() const { return num_computed >= prefill_end; }
};

}  // namespace moed
