// Expert load balance of one MoE layer (Gini, normalized entropy, max/mean, coefficient of variation) and a
// bucketed sliding window of per-step layer × expert assignment counts. Plain C++: no gRPC, no Prometheus.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/types/span.h"

namespace moed {

// Balance of one layer's per-expert assignment counts over some window. With n experts, loads x_i and
// p_i = x_i / sum:
//   gini          = sum_i sum_j |x_i - x_j| / (2 n^2 mean): 0 = uniform, (n-1)/n = all load on one expert
//   entropy       = -sum_i p_i ln p_i / ln n: 1 = uniform, 0 = one expert (n = 1: 1)
//   max_over_mean = max_i x_i / mean: 1 = uniform, n = one expert
//   cv            = population standard deviation / mean: 0 = uniform, sqrt(n-1) = one expert
// All four are 0 when the layer has no assignments (`assignments` == 0 tells it apart from balance).
struct LoadBalance {
  double gini = 0.0;
  double entropy = 0.0;
  double max_over_mean = 0.0;
  double cv = 0.0;
  int64_t assignments = 0;  // sum of the counts
};

// Negative counts are treated as 0.
LoadBalance ComputeLoadBalance(absl::Span<const int64_t> expert_counts);

// Sums of per-step (num_layers × num_experts) counts over the last `window_steps` steps that had any
// assignments, kept in buckets of `bucket_steps` steps so memory is (window_steps / bucket_steps + 1) matrices
// whatever the window: the sum covers the current, partly filled bucket plus the last
// window_steps / bucket_steps full ones, i.e. between window_steps and window_steps + bucket_steps - 1 steps
// once that many have been seen. Not thread-safe (the engine thread owns it).
class StepWindow {
 public:
  // Requires num_cells ≥ 0, window_steps ≥ 1, 1 ≤ bucket_steps ≤ window_steps (rounded down to a multiple).
  StepWindow(int64_t num_cells, int window_steps, int bucket_steps);

  // `step_counts` (num_cells): one step's assignments. Ignored when all zero or of the wrong size.
  void Add(absl::Span<const int64_t> step_counts);

  const std::vector<int64_t>& sums() const { return sums_; }  // (num_cells) over the steps covered
  int64_t steps() const { return steps_; }                    // steps covered by sums()
  int window_steps() const { return window_steps_; }

 private:
  int window_steps_;
  int bucket_steps_;
  std::vector<std::vector<int64_t>> buckets_;  // ring of full buckets, each (num_cells)
  std::vector<int64_t> bucket_step_counts_;    // steps in each ring bucket
  size_t next_ = 0;                            // ring slot the current bucket replaces when full
  std::vector<int64_t> current_;               // the bucket being filled (num_cells)
  int64_t current_steps_ = 0;
  std::vector<int64_t> sums_;
  int64_t steps_ = 0;
};

}  // namespace moed
