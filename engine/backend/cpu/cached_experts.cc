// CpuBackend's hot-expert cache path: the slot pool over the fp32 host-tier experts, routed experts read from
// slots (pinned while they compute), and prefetch of the next MoE layer's predicted experts.
#include <algorithm>

#include "absl/strings/str_format.h"
#include "engine/backend/cpu/cpu_backend.h"
#include "engine/backend/cpu/ops.h"
#include "engine/cache/wave_planner.h"
#include "engine/common/status_macros.h"
#include "engine/moe/router.h"

namespace moed::cpu {

absl::Status CpuBackend::InitExpertCache() {
  const ModelSpec& s = model_->spec;
  if ((options_.expert_cache_slots == 0 && options_.expert_cache_bytes <= 0) || s.num_experts < 1) {
    return absl::OkStatus();
  }
  // Host tier: each routed expert's gate, up, down back to back — the layout SlotView reads.
  std::vector<std::vector<cache::HostPart>> host(static_cast<size_t>(s.num_layers) * s.num_experts);
  const int routed_experts = s.num_routed_experts();
  if (routed_experts == 0) return absl::OkStatus();
  int64_t expert_bytes = 0;  // one expert's fp32 gate, up and down (every routed expert has the same width)
  for (int l = 0; l < s.num_layers; ++l) {
    const CpuLayer& L = w_.layers[l];
    if (s.mlp_kind(l) != MlpKind::kMoe) continue;
    for (int e = 0; e < s.num_experts; ++e) {
      const CpuFfn& f = L.experts[e];
      host[static_cast<size_t>(l) * s.num_experts + e] = {{f.gate.data(), static_cast<int64_t>(f.gate.size())},
                                                          {f.up.data(), static_cast<int64_t>(f.up.size())},
                                                          {f.down.data(), static_cast<int64_t>(f.down.size())}};
      expert_bytes = static_cast<int64_t>(f.gate.size() + f.up.size() + f.down.size()) * sizeof(float);
    }
  }
  cache::ExpertCacheConfig config;
  config.num_layers = s.num_layers;
  config.num_experts = s.num_experts;
  int slots = options_.expert_cache_slots;
  if (slots == 0) {  // sized by bytes: one slot holds one expert
    slots = static_cast<int>(std::clamp<int64_t>(options_.expert_cache_bytes / expert_bytes, 1, routed_experts));
  }
  config.num_slots = std::min(slots, routed_experts);
  config.policy = options_.expert_cache_policy;
  MOED_ASSIGN_OR_RETURN(slot_pool_, cache::MemcpyTransfer::Create(s.num_experts, std::move(host), config.num_slots));
  auto created = cache::ExpertCache::Create(config, slot_pool_.get());
  if (!created.ok()) return absl::InvalidArgumentError("cpu backend: " + std::string(created.status().message()));
  cache_ = std::move(created).value();
  return absl::OkStatus();
}

FfnView CpuBackend::SlotView(int l, int slot) const {
  const int width = w_.layers[l].experts[0].width;
  const int64_t mat = static_cast<int64_t>(width) * model_->spec.hidden_size;
  const float* base = slot_pool_->slot_data(slot);
  return {width, base, base + mat, base + 2 * mat};
}

absl::Status CpuBackend::RunCachedExperts(int l, int64_t rows, const float* h, const int32_t* experts,
                                          const float* weights, const uint8_t* kept, float* y) {
  const ModelSpec& s = model_->spec;
  const int E = s.num_experts, k = s.top_k;
  const int64_t assignments = rows * k;
  std::vector<int64_t> used(E, 0);  // kept assignments per expert
  for (int64_t a = 0; a < assignments; ++a) {
    if (kept[a]) ++used[experts[a]];
  }
  // The shared planner pins the experts; each wave runs over the assignments of its id range, waves in id order,
  // which keeps every token's accumulation order, so the result stays bitwise identical.
  cache::WavePlanner planner(cache_.get(), l, used);
  std::vector<uint8_t> wave_kept;
  std::vector<FfnView> views(E);
  while (true) {
    MOED_ASSIGN_OR_RETURN(const cache::Wave* wave, planner.Next());
    if (wave == nullptr) break;
    std::fill(views.begin(), views.end(), FfnView{});
    for (const cache::PlannedExpert& p : wave->experts) views[p.expert] = SlotView(l, p.slot);
    const uint8_t* run_kept = kept;
    if (!wave->whole_layer) {
      wave_kept.resize(assignments);
      for (int64_t a = 0; a < assignments; ++a) wave_kept[a] = kept[a] && wave->Covers(experts[a]);
      run_kept = wave_kept.data();
    }
    RunRoutedExperts(views, h, static_cast<int>(rows), s.hidden_size, experts, weights, run_kept, k, y, &pool_);
  }
  return absl::OkStatus();
}

absl::Status CpuBackend::PrefetchLayer(int l, const std::vector<float>& x, int64_t rows) {
  const ModelSpec& s = model_->spec;
  const CpuLayer& L = w_.layers[l];
  const int E = s.num_experts, k = s.top_k, hidden = s.hidden_size;
  std::vector<float> h(rows * hidden), logits(rows * E), weights(rows * k);
  std::vector<int32_t> predicted(rows * k);
  RmsNormTo(x.data(), rows, hidden, L.post_attn_norm.data(), s.rms_norm_eps, h.data());
  MatMul(h.data(), rows, hidden, L.router.data(), E, nullptr, logits.data(), &pool_);
  const float* bias = L.router_bias.empty() ? nullptr : L.router_bias.data();
  RouteTopK(logits.data(), static_cast<int>(rows), E, k, s.router, bias, predicted.data(), weights.data());
  return cache::PrefetchExperts(cache_.get(), l, cache::PrefetchOrder(predicted, E)).status();
}

}  // namespace moed::cpu
