// Load ratio and sliding-window imbalance of expert assignments.
#include "server/expert_load.h"

#include <algorithm>
#include <numeric>

namespace moed::server {

std::vector<double> ExpertLoadRatios(absl::Span<const int64_t> layer_counts) {
  const int64_t sum = std::accumulate(layer_counts.begin(), layer_counts.end(), int64_t{0});
  if (sum <= 0 || layer_counts.empty()) return {};
  const double mean = static_cast<double>(sum) / static_cast<double>(layer_counts.size());
  std::vector<double> ratios;
  ratios.reserve(layer_counts.size());
  for (int64_t c : layer_counts) ratios.push_back(static_cast<double>(c) / mean);
  return ratios;
}

ImbalanceWindow::ImbalanceWindow(int num_layers, int num_experts, int window_steps)
    : num_layers_(num_layers),
      num_experts_(num_experts),
      window_steps_(std::max(1, window_steps)),
      sums_(static_cast<size_t>(num_layers) * num_experts, 0) {}

void ImbalanceWindow::Add(absl::Span<const int64_t> step_counts) {
  if (step_counts.size() != sums_.size()) return;
  if (std::all_of(step_counts.begin(), step_counts.end(), [](int64_t c) { return c == 0; })) return;
  steps_.emplace_back(step_counts.begin(), step_counts.end());
  for (size_t i = 0; i < sums_.size(); ++i) sums_[i] += step_counts[i];
  if (static_cast<int>(steps_.size()) <= window_steps_) return;
  const std::vector<int64_t>& oldest = steps_.front();
  for (size_t i = 0; i < sums_.size(); ++i) sums_[i] -= oldest[i];
  steps_.pop_front();
}

double ImbalanceWindow::Ratio(int layer) const {
  if (layer < 0 || layer >= num_layers_ || num_experts_ == 0) return 0.0;
  const auto begin = sums_.begin() + static_cast<ptrdiff_t>(layer) * num_experts_;
  const auto end = begin + num_experts_;
  const int64_t sum = std::accumulate(begin, end, int64_t{0});
  if (sum <= 0) return 0.0;
  const double mean = static_cast<double>(sum) / num_experts_;
  return static_cast<double>(*std::max_element(begin, end)) / mean;
}

}  // namespace moed::server
