// Percentile summaries of latency samples for moe-bench's JSON report.
#include "client/grpc/latency_stats.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace moed::client {

double Quantile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0.0;
  const double pos = q * static_cast<double>(sorted.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  const double frac = pos - static_cast<double>(lo);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * frac;
}

nlohmann::json Summarize(std::vector<double> samples) {
  std::sort(samples.begin(), samples.end());
  const double sum = std::accumulate(samples.begin(), samples.end(), 0.0);
  const double mean = samples.empty() ? 0.0 : sum / static_cast<double>(samples.size());
  return {{"count", samples.size()},
          {"mean", mean},
          {"p50", Quantile(samples, 0.50)},
          {"p90", Quantile(samples, 0.90)},
          {"p99", Quantile(samples, 0.99)},
          {"max", samples.empty() ? 0.0 : samples.back()}};
}

}  // namespace moed::client
