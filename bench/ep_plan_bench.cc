// ep-plan-bench: expert-parallel placement simulated for G = 1..64 GPUs on fortune-moe's measured routing
// (models/fortune-moe/routing.json) and on a skewed synthetic model; balancedness (mean / max GPU load, summed over
// layers) and all-to-all bytes per step for a contiguous split, EPLB-style packing with the fewest redundant slots
// that fit, and with one more slot per GPU. Deterministic: no timing, no randomness beyond a fixed-seed LCG.
//
//   ep-plan-bench [--routing models/fortune-moe/routing.json] [--tokens-per-step 256] [--csv FILE]
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <numeric>
#include <string>
#include <vector>

#include "engine/moe/ep_planner.h"
#include "nlohmann/json.hpp"

namespace moed {
namespace {

struct Workload {
  std::string name;
  std::vector<std::vector<double>> loads;  // (layers, experts): share of a layer's assignments
  int top_k = 0;
  int hidden = 0;  // bytes per token = hidden × 2 (bf16 activations)
};

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "ep-plan-bench: %s\n", what.c_str());
  std::exit(2);
}

Workload Fortune(const std::string& path) {
  std::ifstream in(path);
  if (!in) Fail("cannot read " + path);
  const nlohmann::json j = nlohmann::json::parse(in);
  Workload w{"fortune-moe (routing.json, " + std::to_string(j["tokens"].get<int>()) + " tokens)", {},
             j["top_k"].get<int>(), 128};
  for (const auto& layer : j["counts"]) w.loads.push_back(layer.get<std::vector<double>>());
  return w;
}

// 64 experts, top-6, 8 layers, hidden 4096: Zipf(1.0) expert popularity, each layer a different permutation.
Workload Synthetic() {
  Workload w{"synthetic Zipf(1.0), 64 experts, top-6, 8 layers", {}, 6, 4096};
  uint64_t state = 0x9E3779B97F4A7C15ull;
  for (int l = 0; l < 8; ++l) {
    std::vector<int> perm(64);
    std::iota(perm.begin(), perm.end(), 0);
    for (int i = 63; i > 0; --i) {  // Fisher-Yates with an LCG
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      std::swap(perm[i], perm[(state >> 33) % (i + 1)]);
    }
    std::vector<double> loads(64);
    for (int e = 0; e < 64; ++e) loads[perm[e]] = 1.0 / (e + 1);
    w.loads.push_back(loads);
  }
  return w;
}

struct Result {
  double balancedness = 0;  // Σ mean / Σ max over layers
  double a2a_bytes = 0;     // per step, all layers
  bool ok = false;
};

// `plan(loads)` for every layer; assignments per step: tokens × top_k, split by the layer's load shares.
template <typename Plan>
Result Evaluate(const Workload& w, int tokens_per_step, Plan plan) {
  Result r;
  double sum_mean = 0, sum_max = 0;
  for (const std::vector<double>& loads : w.loads) {
    absl::StatusOr<LayerPlacement> p = plan(loads);
    if (!p.ok()) return r;
    const double total = std::accumulate(loads.begin(), loads.end(), 0.0);
    std::vector<double> per_step(loads.size());
    for (size_t e = 0; e < loads.size(); ++e) per_step[e] = loads[e] / total * tokens_per_step * w.top_k;
    double max = 0;
    for (double g : p->gpu_load) max = std::max(max, g);
    sum_mean += std::accumulate(p->gpu_load.begin(), p->gpu_load.end(), 0.0) / p->gpu_load.size();
    sum_max += max;
    r.a2a_bytes += AllToAllBytes(per_step, *p, 2.0 * w.hidden);
  }
  r.balancedness = sum_max > 0 ? sum_mean / sum_max : 1.0;
  r.ok = true;
  return r;
}

int Main(int argc, char** argv) {
  std::string routing = "models/fortune-moe/routing.json";
  std::string csv_path;
  int tokens = 256;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) Fail("missing value for " + a);
    if (a == "--routing") routing = argv[++i];
    else if (a == "--csv") csv_path = argv[++i];
    else if (a == "--tokens-per-step") tokens = std::atoi(argv[++i]);
    else Fail("unknown flag " + a);
  }
  std::FILE* csv = csv_path.empty() ? nullptr : std::fopen(csv_path.c_str(), "w");
  if (csv != nullptr) {
    std::fprintf(csv, "workload,gpus,redundant_min,balancedness_contiguous,balancedness_eplb_min,"
                      "balancedness_eplb_plus_g,a2a_bytes_contiguous,a2a_bytes_eplb_min,a2a_bytes_eplb_plus_g\n");
  }
  for (const Workload& w : {Fortune(routing), Synthetic()}) {
    const int E = static_cast<int>(w.loads[0].size());
    std::printf("\n%s; %d tokens/step, all-to-all at %d B/token (bf16, hidden %d)\n", w.name.c_str(), tokens,
                2 * w.hidden, w.hidden);
    std::printf("| G | R (fewest) | slots/GPU | contiguous | EPLB, R | EPLB, R + G | a2a MB/step contiguous | "
                "a2a MB/step EPLB, R | a2a MB/step EPLB, R + G |\n|---|---|---|---|---|---|---|---|---|\n");
    for (int g = 1; g <= 64; ++g) {
      const int r = (g - E % g) % g;  // fewest redundant slots with (E + R) % G == 0 (then E + R ≥ G)
      const Result contiguous = Evaluate(w, tokens, [&](const std::vector<double>& l) { return PlanLayerContiguous(l, g); });
      const Result eplb = Evaluate(w, tokens, [&](const std::vector<double>& l) { return PlanLayer(l, g, r); });
      const Result more = Evaluate(w, tokens, [&](const std::vector<double>& l) { return PlanLayer(l, g, r + g); });
      auto bal = [](const Result& x) { return x.ok ? std::to_string(x.balancedness).substr(0, 5) : std::string("-"); };
      auto mb = [](const Result& x) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.3f", x.a2a_bytes / 1e6);
        return x.ok ? std::string(buf) : std::string("-");
      };
      const bool shown = g <= 8 || g == 12 || g == 16 || g == 24 || g == 32 || g == 48 || g == 64;
      if (shown) {
        std::printf("| %d | %d | %d | %s | %s | %s | %s | %s | %s |\n", g, r, (E + r) / g, bal(contiguous).c_str(),
                    bal(eplb).c_str(), bal(more).c_str(), mb(contiguous).c_str(), mb(eplb).c_str(), mb(more).c_str());
      }
      if (csv != nullptr) {
        std::fprintf(csv, "%s,%d,%d,%s,%s,%s,%.0f,%.0f,%.0f\n", E == 8 ? "fortune-moe" : "synthetic-zipf", g, r,
                     bal(contiguous).c_str(), bal(eplb).c_str(), bal(more).c_str(),
                     contiguous.ok ? contiguous.a2a_bytes : -1.0, eplb.a2a_bytes, more.a2a_bytes);
      }
    }
  }
  if (csv != nullptr) std::fclose(csv);
  return 0;
}

}  // namespace
}  // namespace moed

int main(int argc, char** argv) { return moed::Main(argc, argv); }
