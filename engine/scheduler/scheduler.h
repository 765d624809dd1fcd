// Scheduler: continuous, iteration-level batching under a token budget — decodes first, then chunked
// prefill continuations, then admission by queue order from the longest cached prefix; preemption (recompute)
// when KV blocks run out.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "engine/kv/kv_block_manager.h"
#include "engine/scheduler/policies.h"
#include "engine/scheduler/sched_sequence.h"

namespace moed {

struct SchedulerConfig {
  int max_running_seqs = 64;  // sequences holding KV blocks at once
  int max_batch_tokens = 512; // tokens per step, prefill chunks and decode tokens together
};

// One sequence's work in a step: positions [start_pos, start_pos + num_tokens) of its known tokens.
struct ScheduledChunk {
  SchedSequence* seq = nullptr;
  int32_t start_pos = 0;
  int32_t num_tokens = 0;
  int32_t num_prefill_tokens = 0;  // of num_tokens, those below the sequence's prefill_end
  bool reaches_end = false;        // the chunk ends at the last known token: sample after it
};

// What one Schedule() call decided. Chunks are ordered decodes, prefill continuations, admissions.
struct SchedulePlan {
  std::vector<ScheduledChunk> chunks;
  std::vector<SchedSequence*> preempted;  // sequences sent back to the waiting queue this step
  int32_t num_tokens = 0;                 // sum of chunk tokens, ≤ max_batch_tokens
  // Prefix cache, counted in tokens over this step's admissions (0 when prefix caching is off): the tokens
  // admitted sequences asked for, and those served from cached blocks.
  int64_t prefix_queried_tokens = 0;
  int64_t prefix_hit_tokens = 0;
};

// Borrows the KV block manager (must outlive it) and every sequence added (until Remove). Not thread-safe.
// Invariant: every running sequence has 1 ≤ num_tokens() - num_computed between steps, i.e. the caller
// appends the sampled token of every chunk that reached the end (or removes the sequence).
// Prefix caching: a sequence is admitted with the longest cached run of whole blocks that ends before its last
// token (that token's logits are needed, so it is always computed: a prompt whose every block is cached
// recomputes its whole last block). The caller commits the KV written by each step (KvBlockManager::Commit).
class Scheduler {
 public:
  // `order` defaults to PriorityFifoOrder; `victim` defaults to LowestRankVictim over `order`.
  Scheduler(const SchedulerConfig& config, KvBlockManager* kv, std::unique_ptr<QueueOrderPolicy> order = nullptr,
            std::unique_ptr<PreemptionPolicy> victim = nullptr);

  // Queues `seq` (id, priority, arrival_time and ≥ 1 tokens set; holding no blocks). INVALID_ARGUMENT without
  // tokens; ALREADY_EXISTS when this sequence is already queued or running.
  absl::Status Add(SchedSequence* seq);
  // Forgets `seq` (finished, aborted, failed), waiting or running, and frees its KV blocks at once.
  void Remove(SchedSequence* seq);

  // Plans one step and advances num_computed of every scheduled sequence by its chunk.
  SchedulePlan Schedule();

  int num_waiting() const { return static_cast<int>(waiting_.size()); }
  int num_running() const { return static_cast<int>(running_.size()); }
  const std::vector<SchedSequence*>& waiting() const { return waiting_; }  // in queue order
  const std::vector<SchedSequence*>& running() const { return running_; }
  const SchedulerConfig& config() const { return config_; }

 private:
  // Grows `seq`'s blocks for `num_tokens` more tokens, preempting victims among the running
  // sequences not yet scheduled this step. False when `seq` itself was preempted.
  bool Reserve(SchedSequence& seq, int32_t num_tokens, const std::vector<SchedSequence*>& scheduled,
               SchedulePlan* plan);
  void Preempt(SchedSequence& seq, SchedulePlan* plan);
  void InsertWaiting(SchedSequence* seq);
  // Takes the head of the queue into the running set with its cached prefix; false when its blocks do not fit.
  bool Admit(int32_t budget, std::vector<SchedSequence*>* scheduled, SchedulePlan* plan, int32_t* used);
  void Emit(SchedSequence& seq, int32_t num_tokens, std::vector<SchedSequence*>* scheduled, SchedulePlan* plan);

  SchedulerConfig config_;
  KvBlockManager* kv_;
  std::unique_ptr<QueueOrderPolicy> order_;
  std::unique_ptr<PreemptionPolicy> victim_;
  std::vector<SchedSequence*> waiting_;  // sorted by order_
  std::vector<SchedSequence*> running_;  // sorted by order_ at each Schedule()
  uint64_t next_arrival_seq_ = 0;
};

}  // namespace moed
