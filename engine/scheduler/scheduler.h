// Scheduler: continuous, iteration-level batching under a token budget — decodes first, then chunked
// prefill continuations, then admission by queue order; preemption (recompute) when KV blocks run out.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
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
  int64_t seq_id = 0;
  int32_t start_pos = 0;
  int32_t num_tokens = 0;
  int32_t num_prefill_tokens = 0;  // of num_tokens, those below the sequence's prefill_end
  bool reaches_end = false;        // the chunk ends at the last known token: sample after it
};

// What one Schedule() call decided. Chunks are ordered decodes, prefill continuations, admissions.
struct SchedulePlan {
  std::vector<ScheduledChunk> chunks;
  std::vector<int64_t> preempted;  // sequences sent back to the waiting queue this step
  int32_t num_tokens = 0;          // sum of chunk tokens, ≤ max_batch_tokens
};

// Owns the sequence states; borrows the KV block manager (must outlive it). Not thread-safe.
// Invariant: every running sequence has 1 ≤ num_tokens - num_computed between steps, i.e. the
// caller appends the sampled token of every chunk that reached the end (or removes the sequence).
class Scheduler {
 public:
  // `order` defaults to PriorityFifoOrder; `victim` defaults to LowestRankVictim over `order`.
  Scheduler(const SchedulerConfig& config, KvBlockManager* kv, std::unique_ptr<QueueOrderPolicy> order = nullptr,
            std::unique_ptr<PreemptionPolicy> victim = nullptr);

  // Queues a new sequence with `num_tokens` (≥ 1) known tokens. ALREADY_EXISTS for a live id.
  absl::Status Add(int64_t id, int32_t priority, absl::Time arrival_time, int32_t num_tokens);
  // The caller sampled one more token for `id` (a chunk of it reached the end). Unknown ids are ignored.
  void AppendToken(int64_t id);
  // Forgets `id` (finished, aborted, failed), waiting or running, and frees its KV blocks at once.
  void Remove(int64_t id);

  // Plans one step and advances num_computed of every scheduled sequence by its chunk.
  SchedulePlan Schedule();

  int num_waiting() const { return static_cast<int>(waiting_.size()); }
  int num_running() const { return static_cast<int>(running_.size()); }
  const std::vector<int64_t>& waiting() const { return waiting_; }  // in queue order
  const std::vector<int64_t>& running() const { return running_; }
  const SchedSequence* Find(int64_t id) const;  // nullptr when unknown
  const SchedulerConfig& config() const { return config_; }

 private:
  // Grows `seq`'s blocks for `num_tokens` more tokens, preempting victims among the running
  // sequences not yet scheduled this step. False when `seq` itself was preempted.
  bool Reserve(SchedSequence& seq, int32_t num_tokens, const std::vector<int64_t>& scheduled,
               SchedulePlan* plan);
  void Preempt(SchedSequence& seq, SchedulePlan* plan);
  void InsertWaiting(const SchedSequence& seq);
  void Emit(SchedSequence& seq, int32_t num_tokens, std::vector<int64_t>* scheduled, SchedulePlan* plan);

  SchedulerConfig config_;
  KvBlockManager* kv_;
  std::unique_ptr<QueueOrderPolicy> order_;
  std::unique_ptr<PreemptionPolicy> victim_;
  absl::flat_hash_map<int64_t, SchedSequence> seqs_;
  std::vector<int64_t> waiting_;  // sorted by order_
  std::vector<int64_t> running_;  // sorted by order_ at each Schedule()
  uint64_t next_arrival_seq_ = 0;
};

}  // namespace moed
