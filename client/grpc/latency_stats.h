// Percentile summaries of latency samples for moe-bench's JSON report.
#pragma once

#include <vector>

#include "nlohmann/json.hpp"

namespace moed::client {

// The q-quantile (q in [0, 1]) of `sorted` by linear interpolation between closest ranks
// (numpy's default); 0 for an empty sample.
double Quantile(const std::vector<double>& sorted, double q);

// {"count", "mean", "p50", "p90", "p99", "max"} of `samples` (any order; units are the caller's).
nlohmann::json Summarize(std::vector<double> samples);

}  // namespace moed::client
