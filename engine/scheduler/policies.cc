// Scheduling policies.
#include "engine/scheduler/policies.h"

#include <tuple>

#include "absl/base/internal/raw_logging.h"

namespace moed {

bool PriorityFifoOrder::Before(const SchedSequence& a, const SchedSequence& b) const {
  return std::tie(a.priority, a.arrival_time, a.arrival_seq) < std::tie(b.priority, b.arrival_time, b.arrival_seq);
}

size_t LowestRankVictim::PickVictim(absl::Span<const SchedSequence* const> candidates) const {
  ABSL_RAW_CHECK(!candidates.empty(), "PickVictim needs at least one candidate");
  size_t victim = 0;
  for (size_t i = 1; i < candidates.size(); ++i) {
    if (order_.Before(*candidates[victim], *candidates[i])) victim = i;
  }
  return victim;
}

}  // namespace moed
