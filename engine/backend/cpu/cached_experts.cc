// CpuBackend's hot-expert cache path: the slot pool over the fp32 host-tier experts, routed experts read from
// slots (pinned while they compute), and prefetch of the next MoE layer's predicted experts.
#include <algorithm>
#include <numeric>

#include "absl/base/internal/raw_logging.h"
#include "absl/strings/str_format.h"
#include "engine/backend/cpu/cpu_backend.h"
#include "engine/backend/cpu/ops.h"
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
  // The experts this layer computes (kept assignments), in id order.
  std::vector<int64_t> used(E, 0);  // kept assignments per expert
  for (int64_t a = 0; a < assignments; ++a) {
    if (kept[a]) ++used[experts[a]];
  }
  std::vector<int> needed;
  for (int e = 0; e < E; ++e) {
    if (used[e]) needed.push_back(e);
  }
  ABSL_RAW_CHECK(cache_->pinned() == 0, "no expert stays pinned between layers");

  std::vector<FfnView> views(E);
  std::vector<int> pinned;  // experts of this layer holding a pin
  auto acquire = [&](int e) -> absl::Status {
    MOED_ASSIGN_OR_RETURN(const int slot, cache_->Acquire({l, e}, used[e]));
    views[e] = SlotView(l, slot);
    pinned.push_back(e);
    return absl::OkStatus();
  };
  auto release = [&] {
    for (int e : pinned) cache_->Unpin({l, e});
    pinned.clear();
  };

  // Everything fits: pin the hits first so this layer's misses never evict them, then load the misses.
  if (static_cast<int>(needed.size()) <= cache_->capacity()) {
    absl::Status status;
    for (int pass = 0; pass < 2 && status.ok(); ++pass) {
      for (int e : needed) {
        const bool resident = cache_->map().SlotOf({l, e}).has_value();
        if (resident != (pass == 0) || views[e].width > 0) continue;
        status = acquire(e);
        if (!status.ok()) break;
      }
    }
    if (status.ok()) {
      RunRoutedExperts(views, h, static_cast<int>(rows), s.hidden_size, experts, weights, kept, k, y, &pool_);
    }
    release();
    return status;
  }

  // More experts than slots: waves of consecutive expert ids, each as many as the slots hold. Running the waves in
  // id order keeps every token's accumulation order, so the result stays bitwise identical.
  std::vector<uint8_t> wave_kept(assignments);
  for (size_t i = 0; i < needed.size();) {
    size_t j = i;
    absl::Status status;
    for (; j < needed.size() && cache_->CanAdmit({l, needed[j]}); ++j) {
      status = acquire(needed[j]);
      if (!status.ok()) break;
    }
    if (!status.ok()) {
      release();
      return status;
    }
    ABSL_RAW_CHECK(j > i, "an empty wave: a slot must be free once the previous wave is unpinned");
    for (int64_t a = 0; a < assignments; ++a) {
      wave_kept[a] = kept[a] && experts[a] >= needed[i] && experts[a] <= needed[j - 1];
    }
    RunRoutedExperts(views, h, static_cast<int>(rows), s.hidden_size, experts, weights, wave_kept.data(), k, y,
                     &pool_);
    release();
    std::fill(views.begin(), views.end(), FfnView{});
    i = j;
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
  // Most-predicted experts first (ties: lower id), so a small cache prefetches the likeliest ones.
  std::vector<int64_t> votes(E, 0);
  for (int32_t e : predicted) ++votes[e];
  std::vector<int> order(E);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return votes[a] > votes[b]; });
  absl::Status status;
  for (int e : order) {
    if (votes[e] == 0) break;
    absl::StatusOr<bool> issued = cache_->Prefetch({l, e});
    if (!issued.ok()) {
      status = issued.status();
      break;
    }
  }
  cache_->EndPrefetch();
  return status;
}

}  // namespace moed::cpu
