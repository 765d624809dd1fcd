// Scheduler: one step's plan under the token budget, the running limit and the free KV blocks.
#include "engine/scheduler/scheduler.h"

#include <algorithm>

#include "absl/base/internal/raw_logging.h"
#include "absl/strings/str_format.h"

namespace moed {

Scheduler::Scheduler(const SchedulerConfig& config, KvBlockManager* kv, std::unique_ptr<QueueOrderPolicy> order,
                     std::unique_ptr<PreemptionPolicy> victim)
    : config_(config), kv_(kv), order_(std::move(order)), victim_(std::move(victim)) {
  if (!order_) order_ = std::make_unique<PriorityFifoOrder>();
  if (!victim_) victim_ = std::make_unique<LowestRankVictim>(*order_);
}

absl::Status Scheduler::Add(int64_t id, int32_t priority, absl::Time arrival_time, int32_t num_tokens) {
  if (num_tokens < 1) {
    return absl::InvalidArgumentError(absl::StrFormat("sequence %d has %d tokens; needs at least 1", id, num_tokens));
  }
  if (seqs_.contains(id)) return absl::AlreadyExistsError(absl::StrFormat("sequence %d is already scheduled", id));
  SchedSequence& seq = seqs_[id];
  seq.id = id;
  seq.priority = priority;
  seq.arrival_time = arrival_time;
  seq.arrival_seq = next_arrival_seq_++;
  seq.num_tokens = num_tokens;
  InsertWaiting(seq);
  return absl::OkStatus();
}

void Scheduler::AppendToken(int64_t id) {
  auto it = seqs_.find(id);
  if (it != seqs_.end()) ++it->second.num_tokens;
}

void Scheduler::Remove(int64_t id) {
  if (!seqs_.erase(id)) return;
  kv_->Free(id);
  std::erase(waiting_, id);
  std::erase(running_, id);
}

const SchedSequence* Scheduler::Find(int64_t id) const {
  auto it = seqs_.find(id);
  return it == seqs_.end() ? nullptr : &it->second;
}

void Scheduler::InsertWaiting(const SchedSequence& seq) {
  // Before the first sequence ranked after it: a preempted sequence keeps its arrival and so lands
  // ahead of every later arrival of its priority (the front, for equal priorities).
  auto pos = std::find_if(waiting_.begin(), waiting_.end(),
                          [&](int64_t other) { return order_->Before(seq, seqs_.at(other)); });
  waiting_.insert(pos, seq.id);
}

void Scheduler::Preempt(SchedSequence& seq, SchedulePlan* plan) {
  kv_->Free(seq.id);
  std::erase(running_, seq.id);
  seq.running = false;
  seq.num_computed = 0;
  ++seq.num_preemptions;
  InsertWaiting(seq);
  plan->preempted.push_back(seq.id);
}

bool Scheduler::Reserve(SchedSequence& seq, int32_t num_tokens, const std::vector<int64_t>& scheduled,
                        SchedulePlan* plan) {
  while (!kv_->Grow(seq.id, seq.num_computed + num_tokens)) {
    std::vector<const SchedSequence*> candidates;
    for (int64_t id : running_) {
      if (std::find(scheduled.begin(), scheduled.end(), id) == scheduled.end()) candidates.push_back(&seqs_.at(id));
    }
    ABSL_RAW_CHECK(!candidates.empty(), "the sequence being scheduled is always a candidate");
    SchedSequence& victim = seqs_.at(candidates[victim_->PickVictim(candidates)]->id);
    Preempt(victim, plan);
    if (victim.id == seq.id) return false;
  }
  return true;
}

void Scheduler::Emit(SchedSequence& seq, int32_t num_tokens, std::vector<int64_t>* scheduled, SchedulePlan* plan) {
  ScheduledChunk chunk;
  chunk.seq_id = seq.id;
  chunk.start_pos = seq.num_computed;
  chunk.num_tokens = num_tokens;
  chunk.num_prefill_tokens = std::clamp(seq.prefill_end - seq.num_computed, 0, num_tokens);
  chunk.reaches_end = seq.num_computed + num_tokens == seq.num_tokens;
  seq.num_computed += num_tokens;
  plan->chunks.push_back(chunk);
  plan->num_tokens += num_tokens;
  scheduled->push_back(seq.id);
}

SchedulePlan Scheduler::Schedule() {
  SchedulePlan plan;
  std::vector<int64_t> scheduled;
  int32_t budget = config_.max_batch_tokens;
  std::stable_sort(running_.begin(), running_.end(),
                   [&](int64_t a, int64_t b) { return order_->Before(seqs_.at(a), seqs_.at(b)); });

  // 1. One decode token per running sequence past its prefill; 2. continue partial prefills.
  for (bool decode_phase : {true, false}) {
    const std::vector<int64_t> snapshot = running_;  // preemption edits running_
    for (int64_t id : snapshot) {
      if (budget == 0) break;
      SchedSequence& seq = seqs_.at(id);
      if (!seq.running || seq.prefill_done() != decode_phase) continue;
      int32_t remaining = seq.num_tokens - seq.num_computed;
      ABSL_RAW_CHECK(remaining >= 1, "a running sequence lacks its sampled token");
      int32_t n = decode_phase ? 1 : std::min(remaining, budget);
      if (!Reserve(seq, n, scheduled, &plan)) continue;
      Emit(seq, n, &scheduled, &plan);
      budget -= n;
    }
  }

  // 3. Admit waiting sequences in queue order; none in a step that had to preempt (blocks are short).
  while (plan.preempted.empty() && budget > 0 && !waiting_.empty() && num_running() < config_.max_running_seqs) {
    SchedSequence& seq = seqs_.at(waiting_.front());
    int32_t n = std::min(seq.num_tokens, budget);
    if (!kv_->Grow(seq.id, n)) break;  // the head waits for blocks; no overtaking, so no starvation
    waiting_.erase(waiting_.begin());
    seq.running = true;
    seq.num_computed = 0;
    seq.prefill_end = seq.num_tokens;
    running_.push_back(seq.id);
    Emit(seq, n, &scheduled, &plan);
    budget -= n;
  }
  return plan;
}

}  // namespace moed
