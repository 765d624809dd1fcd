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

absl::Status Scheduler::Add(SchedSequence* seq) {
  if (seq->tokens.empty()) {
    return absl::InvalidArgumentError(absl::StrFormat("sequence %d has no tokens; needs at least 1", seq->id));
  }
  auto known = [&](const std::vector<SchedSequence*>& v) { return std::find(v.begin(), v.end(), seq) != v.end(); };
  if (known(waiting_) || known(running_)) {
    return absl::AlreadyExistsError(absl::StrFormat("sequence %d is already scheduled", seq->id));
  }
  seq->arrival_seq = next_arrival_seq_++;
  seq->running = false;
  seq->num_computed = 0;
  InsertWaiting(seq);
  return absl::OkStatus();
}

void Scheduler::Remove(SchedSequence* seq) {
  kv_->Free(seq->kv);
  std::erase(waiting_, seq);
  std::erase(running_, seq);
  seq->running = false;
}

void Scheduler::InsertWaiting(SchedSequence* seq) {
  // Before the first sequence ranked after it: a preempted sequence keeps its arrival and so lands
  // ahead of every later arrival of its priority (the front, for equal priorities).
  auto pos = std::find_if(waiting_.begin(), waiting_.end(),
                          [&](const SchedSequence* other) { return order_->Before(*seq, *other); });
  waiting_.insert(pos, seq);
}

void Scheduler::Preempt(SchedSequence& seq, SchedulePlan* plan) {
  kv_->Free(seq.kv);  // its committed blocks stay cached: readmission may find them again
  std::erase(running_, &seq);
  seq.running = false;
  seq.num_computed = 0;
  seq.num_cached = 0;
  ++seq.num_preemptions;
  InsertWaiting(&seq);
  plan->preempted.push_back(&seq);
}

bool Scheduler::Reserve(SchedSequence& seq, int32_t num_tokens, const std::vector<SchedSequence*>& scheduled,
                        SchedulePlan* plan) {
  while (!kv_->Grow(seq.kv, seq.num_computed + num_tokens)) {
    std::vector<const SchedSequence*> candidates;
    for (SchedSequence* s : running_) {
      if (std::find(scheduled.begin(), scheduled.end(), s) == scheduled.end()) candidates.push_back(s);
    }
    ABSL_RAW_CHECK(!candidates.empty(), "the sequence being scheduled is always a candidate");
    SchedSequence& victim = *const_cast<SchedSequence*>(candidates[victim_->PickVictim(candidates)]);
    Preempt(victim, plan);
    if (&victim == &seq) return false;
  }
  return true;
}

void Scheduler::Emit(SchedSequence& seq, int32_t num_tokens, std::vector<SchedSequence*>* scheduled,
                     SchedulePlan* plan) {
  ScheduledChunk chunk;
  chunk.seq = &seq;
  chunk.start_pos = seq.num_computed;
  chunk.num_tokens = num_tokens;
  chunk.num_prefill_tokens = std::clamp(seq.prefill_end - seq.num_computed, 0, num_tokens);
  chunk.reaches_end = seq.num_computed + num_tokens == seq.num_tokens();
  seq.num_computed += num_tokens;
  plan->chunks.push_back(chunk);
  plan->num_tokens += num_tokens;
  scheduled->push_back(&seq);
}

bool Scheduler::Admit(int32_t budget, std::vector<SchedSequence*>* scheduled, SchedulePlan* plan, int32_t* used) {
  SchedSequence& seq = *waiting_.front();
  // The last known token is always computed: its logits give the next token.
  const PrefixHit hit = kv_->FindPrefix(seq.tokens, seq.num_tokens() - 1);
  const int32_t n = std::min(seq.num_tokens() - hit.num_tokens, budget);
  if (!kv_->AllocateWithPrefix(seq.kv, hit, hit.num_tokens + n)) return false;
  waiting_.erase(waiting_.begin());
  seq.running = true;
  seq.num_computed = hit.num_tokens;
  seq.num_cached = hit.num_tokens;
  seq.prefill_end = seq.num_tokens();
  running_.push_back(&seq);
  if (kv_->prefix_caching()) {
    plan->prefix_queried_tokens += seq.num_tokens();
    plan->prefix_hit_tokens += hit.num_tokens;
  }
  Emit(seq, n, scheduled, plan);
  *used = n;
  return true;
}

SchedulePlan Scheduler::Schedule() {
  SchedulePlan plan;
  std::vector<SchedSequence*> scheduled;
  int32_t budget = config_.max_batch_tokens;
  std::stable_sort(running_.begin(), running_.end(),
                   [&](const SchedSequence* a, const SchedSequence* b) { return order_->Before(*a, *b); });

  // 1. One decode token per running sequence past its prefill; 2. continue partial prefills.
  for (bool decode_phase : {true, false}) {
    const std::vector<SchedSequence*> snapshot = running_;  // preemption edits running_
    for (SchedSequence* s : snapshot) {
      if (budget == 0) break;
      SchedSequence& seq = *s;
      if (!seq.running || seq.prefill_done() != decode_phase) continue;
      const int32_t remaining = seq.num_tokens() - seq.num_computed;
      ABSL_RAW_CHECK(remaining >= 1, "a running sequence lacks its sampled token");
      const int32_t n = decode_phase ? 1 : std::min(remaining, budget);
      if (!Reserve(seq, n, scheduled, &plan)) continue;
      Emit(seq, n, &scheduled, &plan);
      budget -= n;
    }
  }

  // 3. Admit waiting sequences in queue order; none in a step that had to preempt (blocks are short).
  // The head waits for blocks: no overtaking, so no starvation.
  while (plan.preempted.empty() && budget > 0 && !waiting_.empty() && num_running() < config_.max_running_seqs) {
    int32_t used = 0;
    if (!Admit(budget, &scheduled, &plan, &used)) break;
    budget -= used;
  }
  return plan;
}

}  // namespace moed
