// Expert-parallel placement on paper: replicate hot experts and pack the replicas onto GPUs (the redundant-experts
// and balanced-packing idea of DeepSeek's EPLB, global policy), then estimate balance and all-to-all traffic.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace moed {

// One MoE layer placed on `num_gpus` GPUs with num_experts + redundant expert slots, (E + R) / G per GPU.
struct LayerPlacement {
  std::vector<int> replicas;                  // (num_experts) copies of each expert, ≥ 1
  std::vector<std::vector<int>> gpu_experts;  // (num_gpus) the expert id in each of the GPU's slots
  std::vector<double> gpu_load;               // (num_gpus) load served, a replica taking load / replicas
  double balancedness = 1.0;                  // mean / max of gpu_load (1 = perfectly even; 1 with no load)
};

// Replication: each of the `redundant` extra slots goes, one at a time, to the expert with the largest load per
// copy (ties: lower id). Packing: replicas by load per copy, largest first, each to the least-loaded GPU that
// has a free slot, preferring GPUs that do not hold that expert yet (ties: lower GPU id).
// INVALID_ARGUMENT when num_gpus < 1, redundant < 0, loads are empty or negative, or (E + R) % G != 0.
absl::StatusOr<LayerPlacement> PlanLayer(absl::Span<const double> loads, int num_gpus, int redundant);

// Contiguous placement without replication (GPU g holds experts [g·E/G, (g+1)·E/G)), the usual static EP split;
// requires E % G == 0.
absl::StatusOr<LayerPlacement> PlanLayerContiguous(absl::Span<const double> loads, int num_gpus);

// All-to-all bytes of one layer and step: tokens live evenly on the GPUs (data-parallel attention); each of a
// token's assignments to expert e stays local when the token's GPU holds a copy of e, else it is dispatched to a
// GPU that does and its output combined back: 2 · bytes_per_token for the share (1 − gpus_holding(e) / G).
// `assignments` (num_experts): assignments per step; bytes_per_token = hidden_size · bytes per element.
double AllToAllBytes(absl::Span<const double> assignments, const LayerPlacement& placement, double bytes_per_token);

}  // namespace moed
