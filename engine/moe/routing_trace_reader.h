// Reading a --routing-trace file back (gzip JSON lines, as RoutingTrace writes them): the replayable routing a cache
// bench imposes instead of synthetic weights' near-uniform routing.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace moed {

struct TracedToken {
  std::string request;
  int32_t position = 0;
  int32_t token = 0;
  std::vector<std::vector<int32_t>> experts;  // (num_layers) the token's experts in that layer, in the router's order
  std::vector<std::vector<float>> weights;    // (num_layers) their router weights; empty when the record has none
};

// Records in file order, at most max_records (< 0 = all). NOT_FOUND when the file cannot be opened; INVALID_ARGUMENT
// naming the line for a record that is not JSON or lacks request/position/token/experts, or when a record's layer
// count differs from the first record's.
absl::StatusOr<std::vector<TracedToken>> ReadRoutingTrace(const std::string& path, int64_t max_records = -1);

}  // namespace moed
