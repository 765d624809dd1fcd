// Greedy replication and balanced packing of experts onto GPUs, and the all-to-all estimate.
#include "engine/moe/ep_planner.h"

#include <algorithm>
#include <numeric>

#include "absl/strings/str_format.h"

namespace moed {
namespace {

absl::Status CheckLoads(absl::Span<const double> loads, int num_gpus) {
  if (num_gpus < 1) return absl::InvalidArgumentError(absl::StrFormat("gpus (%d) must be at least 1", num_gpus));
  if (loads.empty()) return absl::InvalidArgumentError("no expert loads to place");
  for (size_t e = 0; e < loads.size(); ++e) {
    if (!(loads[e] >= 0)) return absl::InvalidArgumentError(absl::StrFormat("load of expert %d is negative", e));
  }
  return absl::OkStatus();
}

void Finish(LayerPlacement& p) {
  const double max = *std::max_element(p.gpu_load.begin(), p.gpu_load.end());
  const double mean = std::accumulate(p.gpu_load.begin(), p.gpu_load.end(), 0.0) / p.gpu_load.size();
  p.balancedness = max > 0 ? mean / max : 1.0;
}

}  // namespace

absl::StatusOr<LayerPlacement> PlanLayer(absl::Span<const double> loads, int num_gpus, int redundant) {
  if (absl::Status s = CheckLoads(loads, num_gpus); !s.ok()) return s;
  const int E = static_cast<int>(loads.size());
  if (redundant < 0) return absl::InvalidArgumentError(absl::StrFormat("redundant (%d) must be ≥ 0", redundant));
  if ((E + redundant) % num_gpus != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "experts + redundant (%d + %d = %d) must be a multiple of gpus (%d): every GPU gets the same number of slots",
        E, redundant, E + redundant, num_gpus));
  }
  LayerPlacement p;
  p.replicas.assign(E, 1);
  for (int r = 0; r < redundant; ++r) {
    int best = 0;
    for (int e = 1; e < E; ++e) {
      if (loads[e] / p.replicas[e] > loads[best] / p.replicas[best]) best = e;
    }
    ++p.replicas[best];
  }
  struct Copy {
    int expert;
    double load;
  };
  std::vector<Copy> copies;
  for (int e = 0; e < E; ++e) {
    for (int k = 0; k < p.replicas[e]; ++k) copies.push_back({e, loads[e] / p.replicas[e]});
  }
  std::stable_sort(copies.begin(), copies.end(), [](const Copy& a, const Copy& b) { return a.load > b.load; });
  const size_t slots = static_cast<size_t>((E + redundant) / num_gpus);
  p.gpu_experts.assign(num_gpus, {});
  p.gpu_load.assign(num_gpus, 0.0);
  for (const Copy& c : copies) {
    int best = -1;
    bool best_holds = true;
    for (int g = 0; g < num_gpus; ++g) {
      if (p.gpu_experts[g].size() >= slots) continue;
      const bool holds = std::find(p.gpu_experts[g].begin(), p.gpu_experts[g].end(), c.expert) != p.gpu_experts[g].end();
      if (best < 0 || (best_holds && !holds) || (holds == best_holds && p.gpu_load[g] < p.gpu_load[best])) {
        best = g;
        best_holds = holds;
      }
    }
    p.gpu_experts[best].push_back(c.expert);
    p.gpu_load[best] += c.load;
  }
  Finish(p);
  return p;
}

absl::StatusOr<LayerPlacement> PlanLayerContiguous(absl::Span<const double> loads, int num_gpus) {
  if (absl::Status s = CheckLoads(loads, num_gpus); !s.ok()) return s;
  const int E = static_cast<int>(loads.size());
  if (E % num_gpus != 0) {
    return absl::InvalidArgumentError(absl::StrFormat("experts (%d) must be a multiple of gpus (%d)", E, num_gpus));
  }
  LayerPlacement p;
  p.replicas.assign(E, 1);
  p.gpu_experts.assign(num_gpus, {});
  p.gpu_load.assign(num_gpus, 0.0);
  for (int e = 0; e < E; ++e) {
    const int g = e / (E / num_gpus);
    p.gpu_experts[g].push_back(e);
    p.gpu_load[g] += loads[e];
  }
  Finish(p);
  return p;
}

double AllToAllBytes(absl::Span<const double> assignments, const LayerPlacement& placement, double bytes_per_token) {
  const int G = static_cast<int>(placement.gpu_experts.size());
  if (G <= 1) return 0.0;
  std::vector<int> holders(assignments.size(), 0);
  for (const std::vector<int>& slots : placement.gpu_experts) {
    std::vector<int> distinct = slots;
    std::sort(distinct.begin(), distinct.end());
    distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
    for (int e : distinct) {
      if (static_cast<size_t>(e) < holders.size()) ++holders[e];
    }
  }
  double bytes = 0.0;
  for (size_t e = 0; e < assignments.size(); ++e) {
    bytes += assignments[e] * (1.0 - static_cast<double>(holders[e]) / G) * 2.0 * bytes_per_token;
  }
  return bytes;
}

}  // namespace moed
