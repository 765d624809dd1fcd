// `moectl plan-ep`: an expert-parallel placement of observed expert loads (engine/moe/ep_planner), as text or JSON.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace moed::client {

struct PlanEpInput {
  int num_layers = 0;
  int num_experts = 0;
  int top_k = 0;
  int hidden_size = 0;          // activations cross GPUs as bf16: 2 × hidden_size bytes per token
  std::vector<int64_t> routed;  // (num_layers × num_experts) layer-major assignments over `steps` steps
  int64_t steps = 0;
  std::vector<bool> layer_is_moe;  // empty: every layer with assignments is planned
  std::string source;           // where the loads came from, for the report
};

// INVALID_ARGUMENT when the matrix and shape disagree, gpus < 1, no layer has assignments, or the planner refuses
// (E + R not a multiple of G). redundant < 0 = the fewest slots that fit.
absl::StatusOr<std::string> PlanEpReport(const PlanEpInput& in, int gpus, int redundant, bool json);

// Reads `moectl stats --json` output (num_layers, num_experts, top_k, steps, routed_tokens; window_routed_tokens
// and window_steps when present are preferred). hidden_size is not in it and must be set by the caller.
absl::StatusOr<PlanEpInput> PlanEpInputFromStatsJson(const std::string& text, const std::string& source);

// Reads a routing trace (moed --routing-trace: gzip JSON lines, rotated files included) and counts assignments per
// (layer, expert). A trace is sampled, so per-step figures are scaled to `tokens_per_step` tokens per step.
// num_experts 0 = the largest expert id seen + 1. hidden_size must be set by the caller.
absl::StatusOr<PlanEpInput> PlanEpInputFromTrace(const std::string& path, int num_experts, int tokens_per_step);

}  // namespace moed::client
