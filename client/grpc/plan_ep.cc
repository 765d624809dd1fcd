// plan-ep report: per-layer placement, per-GPU load, balancedness and all-to-all bytes per step.
#include "client/grpc/plan_ep.h"

#include <zlib.h>

#include <algorithm>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "engine/moe/ep_planner.h"
#include "nlohmann/json.hpp"

namespace moed::client {

absl::StatusOr<PlanEpInput> PlanEpInputFromStatsJson(const std::string& text, const std::string& source) {
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return absl::InvalidArgumentError(source + ": not a JSON object");
  for (const char* key : {"num_layers", "num_experts", "top_k", "steps", "routed_tokens"}) {
    if (!j.contains(key)) return absl::InvalidArgumentError(absl::StrCat(source, ": missing field '", key, "'"));
  }
  PlanEpInput in;
  in.source = source;
  try {
    in.num_layers = j["num_layers"].get<int>();
    in.num_experts = j["num_experts"].get<int>();
    in.top_k = j["top_k"].get<int>();
    in.steps = j["steps"].get<int64_t>();
    in.routed = j["routed_tokens"].get<std::vector<int64_t>>();
    if (j.contains("window_routed_tokens") && j.contains("window_steps") && j["window_steps"].get<int64_t>() > 0) {
      in.routed = j["window_routed_tokens"].get<std::vector<int64_t>>();
      in.steps = j["window_steps"].get<int64_t>();
      in.source += " (last 1000 steps window)";
    }
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", e.what()));
  }
  return in;
}

absl::StatusOr<PlanEpInput> PlanEpInputFromTrace(const std::string& path, int num_experts, int tokens_per_step) {
  if (tokens_per_step < 1) return absl::InvalidArgumentError("--tokens-per-step must be at least 1");
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) return absl::InvalidArgumentError(absl::StrCat(path, ": cannot open"));
  std::string text;
  char buf[1 << 16];
  for (int n; (n = gzread(f, buf, sizeof buf)) > 0;) text.append(buf, n);
  gzclose(f);
  std::vector<std::vector<int64_t>> counts;  // [layer][expert]
  int64_t tokens = 0;
  int top_k = 0;
  size_t line_no = 0;
  for (size_t start = 0, nl; start < text.size(); start = nl + 1) {
    nl = text.find('\n', start);
    if (nl == std::string::npos) nl = text.size();
    ++line_no;
    const nlohmann::json j = nlohmann::json::parse(text.substr(start, nl - start), nullptr, false);
    if (j.is_discarded() || !j.contains("experts") || !j["experts"].is_array()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ":", line_no, ": not a routing trace record"));
    }
    const auto& layers = j["experts"];
    if (counts.empty()) counts.resize(layers.size());
    if (layers.size() != counts.size()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ":", line_no, ": ", layers.size(), " layers, expected ",
                                                     counts.size()));
    }
    for (size_t l = 0; l < layers.size(); ++l) {
      top_k = std::max<int>(top_k, static_cast<int>(layers[l].size()));
      for (const auto& e : layers[l]) {
        const int id = e.get<int>();
        if (id < 0) return absl::InvalidArgumentError(absl::StrCat(path, ":", line_no, ": negative expert id"));
        if (static_cast<size_t>(id) >= counts[l].size()) counts[l].resize(id + 1, 0);
        ++counts[l][id];
      }
    }
    ++tokens;
  }
  if (tokens == 0) return absl::InvalidArgumentError(absl::StrCat(path, ": no records"));
  int experts = num_experts;
  for (const auto& layer : counts) experts = std::max<int>(experts, static_cast<int>(layer.size()));
  PlanEpInput in;
  in.num_layers = static_cast<int>(counts.size());
  in.num_experts = experts;
  in.top_k = top_k;
  for (auto& layer : counts) {
    layer.resize(experts, 0);
    in.routed.insert(in.routed.end(), layer.begin(), layer.end());
  }
  // Per step = count × tokens_per_step / tokens: the trace's mix at the chosen batch size.
  for (int64_t& c : in.routed) c *= tokens_per_step;
  in.steps = tokens;
  in.source = absl::StrCat("routing trace ", path, " (", tokens, " tokens, scaled to ", tokens_per_step,
                           " tokens per step)");
  return in;
}

absl::StatusOr<std::string> PlanEpReport(const PlanEpInput& in, int gpus, int redundant, bool json) {
  const int L = in.num_layers, E = in.num_experts;
  if (L < 1 || E < 1 || in.routed.size() != static_cast<size_t>(L) * E) {
    return absl::InvalidArgumentError(absl::StrFormat("loads: %d values for %d layers x %d experts", in.routed.size(),
                                                      L, E));
  }
  if (gpus < 1) return absl::InvalidArgumentError(absl::StrFormat("--gpus (%d) must be at least 1", gpus));
  const int r = redundant >= 0 ? redundant : (gpus - E % gpus) % gpus;
  const double steps = static_cast<double>(std::max<int64_t>(1, in.steps));
  const double bytes_per_token = 2.0 * in.hidden_size;

  std::vector<double> gpu_total(gpus, 0.0);
  double sum_mean = 0, sum_max = 0, a2a = 0, a2a_contiguous = 0;
  bool contiguous_ok = E % gpus == 0;
  double sum_max_contiguous = 0;
  nlohmann::json layers_json = nlohmann::json::array();
  std::string layers_text;
  int planned = 0;
  for (int l = 0; l < L; ++l) {
    if (!in.layer_is_moe.empty() && !in.layer_is_moe[l]) continue;
    std::vector<double> per_step(E);
    for (int e = 0; e < E; ++e) per_step[e] = static_cast<double>(in.routed[static_cast<size_t>(l) * E + e]) / steps;
    if (std::accumulate(per_step.begin(), per_step.end(), 0.0) <= 0) continue;
    absl::StatusOr<LayerPlacement> p = PlanLayer(per_step, gpus, r);
    if (!p.ok()) return absl::InvalidArgumentError(absl::StrCat("--gpus/--redundant: ", p.status().message()));
    ++planned;
    const double max = *std::max_element(p->gpu_load.begin(), p->gpu_load.end());
    sum_max += max;
    sum_mean += std::accumulate(p->gpu_load.begin(), p->gpu_load.end(), 0.0) / gpus;
    for (int g = 0; g < gpus; ++g) gpu_total[g] += p->gpu_load[g];
    const double bytes = AllToAllBytes(per_step, *p, bytes_per_token);
    a2a += bytes;
    if (contiguous_ok) {
      absl::StatusOr<LayerPlacement> c = PlanLayerContiguous(per_step, gpus);
      sum_max_contiguous += *std::max_element(c->gpu_load.begin(), c->gpu_load.end());
      a2a_contiguous += AllToAllBytes(per_step, *c, bytes_per_token);
    }
    layers_json.push_back({{"layer", l}, {"balancedness", p->balancedness}, {"replicas", p->replicas},
                           {"gpu_experts", p->gpu_experts}, {"gpu_load", p->gpu_load},
                           {"all_to_all_bytes_per_step", bytes}});
    std::vector<std::string> gpus_text;
    for (int g = 0; g < gpus && g < 16; ++g) {
      gpus_text.push_back(absl::StrCat("G", g, "[", absl::StrJoin(p->gpu_experts[g], ","), "]"));
    }
    absl::StrAppendFormat(&layers_text, "  layer %d: balancedness %.3f  %s%s\n", l, p->balancedness,
                          absl::StrJoin(gpus_text, " "), gpus > 16 ? " ..." : "");
  }
  if (planned == 0) return absl::InvalidArgumentError("no MoE layer has any assignments yet: nothing to place");
  const double balancedness = sum_max > 0 ? sum_mean / sum_max : 1.0;
  const double mean_total = std::accumulate(gpu_total.begin(), gpu_total.end(), 0.0) / gpus;
  if (json) {
    nlohmann::json j = {{"source", in.source}, {"gpus", gpus}, {"redundant", r}, {"slots_per_gpu", (E + r) / gpus},
                        {"balancedness", balancedness}, {"gpu_load", gpu_total},
                        {"all_to_all_bytes_per_step", a2a}, {"layers", layers_json}};
    if (contiguous_ok) {
      j["contiguous"] = {{"balancedness", sum_max_contiguous > 0 ? sum_mean / sum_max_contiguous : 1.0},
                         {"all_to_all_bytes_per_step", a2a_contiguous}};
    }
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  }
  std::string out = absl::StrFormat(
      "expert-parallel plan: %d GPUs, %d experts + %d redundant = %d slots per GPU per layer, %d MoE layers\n"
      "loads: %s, %.1f assignments per step per layer\n", gpus, E, r, (E + r) / gpus, planned, in.source,
      std::accumulate(gpu_total.begin(), gpu_total.end(), 0.0) / planned);
  out += "per GPU (assignments per step, all layers):\n";
  for (int g = 0; g < gpus; ++g) {
    absl::StrAppendFormat(&out, "  GPU %2d  %10.1f  %5.2fx mean\n", g, gpu_total[g],
                          mean_total > 0 ? gpu_total[g] / mean_total : 0.0);
  }
  absl::StrAppendFormat(&out, "balancedness (mean / max GPU load, summed over layers): %.3f\n", balancedness);
  absl::StrAppendFormat(&out, "all-to-all per step (dispatch + combine, bf16, hidden %d): %.0f bytes\n",
                        in.hidden_size, a2a);
  if (contiguous_ok) {
    absl::StrAppendFormat(&out, "contiguous split without replicas: balancedness %.3f, all-to-all %.0f bytes\n",
                          sum_max_contiguous > 0 ? sum_mean / sum_max_contiguous : 1.0, a2a_contiguous);
  }
  out += "placement (expert ids per GPU):\n" + layers_text;
  return out;
}

}  // namespace moed::client
