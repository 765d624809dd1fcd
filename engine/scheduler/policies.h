// Scheduling policies as small objects: the waiting-queue order and the choice of a preemption victim.
#pragma once

#include <cstddef>

#include "absl/types/span.h"
#include "engine/scheduler/sched_sequence.h"

namespace moed {

// Ranks sequences: who is admitted first, who keeps running longest. Must be a strict weak order.
class QueueOrderPolicy {
 public:
  virtual ~QueueOrderPolicy() = default;
  // True when `a` is served before `b`.
  virtual bool Before(const SchedSequence& a, const SchedSequence& b) const = 0;
};

// (priority, arrival_time, arrival_seq): lower priority value first, FIFO within a priority.
class PriorityFifoOrder final : public QueueOrderPolicy {
 public:
  bool Before(const SchedSequence& a, const SchedSequence& b) const override;
};

// Chooses which running sequence gives up its KV blocks when a block is needed and none is free.
class PreemptionPolicy {
 public:
  virtual ~PreemptionPolicy() = default;
  // Index into `candidates` (non-empty) of the victim.
  virtual size_t PickVictim(absl::Span<const SchedSequence* const> candidates) const = 0;
};

// The candidate the order ranks last: lowest priority, then latest arrival. Borrows `order`,
// which must outlive it.
class LowestRankVictim final : public PreemptionPolicy {
 public:
  explicit LowestRankVictim(const QueueOrderPolicy& order) : order_(order) {}
  size_t PickVictim(absl::Span<const SchedSequence* const> candidates) const override;

 private:
  const QueueOrderPolicy& order_;
};

}  // namespace moed
