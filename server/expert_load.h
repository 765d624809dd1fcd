// Expert-load math behind the metrics: per-step load ratios and a sliding-window imbalance ratio.
#pragma once

#include <cstdint>
#include <deque>
#include <vector>

#include "absl/types/span.h"

namespace moed::server {

// Each expert's assignments divided by the layer's mean (sum / experts), one value per expert.
// Empty when the layer had no assignments (the step is skipped).
std::vector<double> ExpertLoadRatios(absl::Span<const int64_t> layer_counts);

// max / mean of per-expert assignment counts summed over the last `window_steps` steps that had
// any assignments, per layer. Not thread-safe (the engine thread owns it).
class ImbalanceWindow {
 public:
  ImbalanceWindow(int num_layers, int num_experts, int window_steps);

  // `step_counts`: (layers * experts) assignments of one step, layer-major. Steps with no
  // assignments at all are ignored.
  void Add(absl::Span<const int64_t> step_counts);

  // 0 while the window holds no assignments for `layer`.
  double Ratio(int layer) const;

 private:
  int num_layers_;
  int num_experts_;
  int window_steps_;
  std::deque<std::vector<int64_t>> steps_;  // oldest first, each (layers * experts)
  std::vector<int64_t> sums_;               // (layers * experts) over steps_
};

}  // namespace moed::server
