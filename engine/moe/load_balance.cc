// Load-balance statistics of expert assignment counts and their bucketed sliding window.
#include "engine/moe/load_balance.h"

#include <algorithm>
#include <cmath>

namespace moed {

LoadBalance ComputeLoadBalance(absl::Span<const int64_t> expert_counts) {
  LoadBalance b;
  const size_t n = expert_counts.size();
  std::vector<double> x;
  x.reserve(n);
  for (int64_t c : expert_counts) {
    x.push_back(static_cast<double>(std::max<int64_t>(0, c)));
    b.assignments += std::max<int64_t>(0, c);
  }
  if (n == 0 || b.assignments == 0) return b;
  const double sum = static_cast<double>(b.assignments);
  const double mean = sum / static_cast<double>(n);

  // Gini from the sorted loads: sum_i (2i - n - 1) x_(i) / (n^2 mean), i = 1..n, equals the pairwise form.
  std::vector<double> sorted = x;
  std::sort(sorted.begin(), sorted.end());
  double weighted = 0.0;
  for (size_t i = 0; i < n; ++i) weighted += (2.0 * static_cast<double>(i + 1) - static_cast<double>(n) - 1.0) * sorted[i];
  b.gini = weighted / (static_cast<double>(n) * sum);

  double h = 0.0;
  double var = 0.0;
  for (double v : x) {
    if (v > 0) h -= (v / sum) * std::log(v / sum);
    var += (v - mean) * (v - mean);
  }
  b.entropy = n > 1 ? h / std::log(static_cast<double>(n)) : 1.0;
  b.max_over_mean = sorted.back() / mean;
  b.cv = std::sqrt(var / static_cast<double>(n)) / mean;
  return b;
}

StepWindow::StepWindow(int64_t num_cells, int window_steps, int bucket_steps)
    : window_steps_(std::max(1, window_steps)),
      bucket_steps_(std::clamp(bucket_steps, 1, window_steps_)),
      buckets_(static_cast<size_t>(window_steps_ / bucket_steps_), std::vector<int64_t>(num_cells, 0)),
      bucket_step_counts_(buckets_.size(), 0),
      current_(num_cells, 0),
      sums_(num_cells, 0) {}

void StepWindow::Add(absl::Span<const int64_t> step_counts) {
  if (step_counts.size() != current_.size()) return;
  if (std::all_of(step_counts.begin(), step_counts.end(), [](int64_t c) { return c == 0; })) return;
  for (size_t i = 0; i < current_.size(); ++i) {
    current_[i] += step_counts[i];
    sums_[i] += step_counts[i];
  }
  ++current_steps_;
  ++steps_;
  if (current_steps_ < bucket_steps_) return;
  // The current bucket is full: it replaces the oldest full bucket, whose counts leave the window.
  std::vector<int64_t>& oldest = buckets_[next_];
  for (size_t i = 0; i < sums_.size(); ++i) sums_[i] -= oldest[i];
  steps_ -= bucket_step_counts_[next_];
  oldest.swap(current_);
  bucket_step_counts_[next_] = current_steps_;
  std::fill(current_.begin(), current_.end(), 0);
  current_steps_ = 0;
  next_ = (next_ + 1) % buckets_.size();
}

}  // namespace moed
