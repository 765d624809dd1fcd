// ExpertHostTier: checkpoint bf16 used in place, the rest converted or generated into an anonymous mapping.
#include "engine/backend/cuda/host/expert_host_tier.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "engine/model/dtype.h"
#include "engine/model/synthetic_model.h"

namespace moed::cuda {
namespace {

// Writes `numel` bf16 values of `t` into dst: converted from the checkpoint, or the synthetic rule's values (the same
// as the device fill, synthetic_fill.cu).
void Materialize(const TensorView& t, int64_t numel, const SyntheticFill* fill, uint16_t* dst) {
  if (fill != nullptr) {
    for (int64_t i = 0; i < numel; ++i) {
      dst[i] = FloatToBf16(fill->scale * (2.0f * SyntheticUniform(fill->seed, static_cast<uint64_t>(i)) - 1.0f));
    }
  } else if (t.dtype == DType::kBF16) {
    std::memcpy(dst, t.data, numel * sizeof(uint16_t));
  } else {
    for (int64_t i = 0; i < numel; ++i) dst[i] = FloatToBf16(t.at(i));
  }
}

}  // namespace

ExpertHostTier::~ExpertHostTier() {
  if (arena_ != nullptr) ::munmap(arena_, arena_mapped_);
}

absl::StatusOr<std::unique_ptr<ExpertHostTier>> ExpertHostTier::Build(const Model& model, int threads) {
  const ModelSpec& s = model.spec;
  std::unique_ptr<ExpertHostTier> tier(new ExpertHostTier());
  const int E = s.num_experts;
  const int64_t H = s.hidden_size, F = s.moe_intermediate_size, mat = F * H;
  tier->parts_.assign(static_cast<size_t>(s.num_layers) * std::max(E, 0), {});
  tier->expert_bytes_ = 3 * mat * static_cast<int64_t>(sizeof(uint16_t));
  const bool synthetic = absl::StartsWith(model.source, "synthetic:");
  struct Job {
    int64_t flat;
    const TensorView* t[3];
  };
  std::vector<Job> jobs;  // experts to write into the arena
  for (int l = 0; l < s.num_layers; ++l) {
    if (!s.layer_is_moe[l] || E <= 0) continue;
    const auto& experts = model.weights.layers[l].experts;
    if (static_cast<int>(experts.size()) != E) {
      return absl::InvalidArgumentError(
          absl::StrFormat("layer %d: %d expert weight sets, expected %d", l, experts.size(), E));
    }
    for (int e = 0; e < E; ++e) {
      const FfnOf<TensorView>& f = experts[e];
      const TensorView* t[3] = {&f.gate, &f.up, &f.down};
      bool in_place = true;
      for (const TensorView* v : t) {
        if (v->present() && v->numel() != mat) {
          return absl::InvalidArgumentError(
              absl::StrFormat("tensor '%s': %d elements, expected %d", v->name, v->numel(), mat));
        }
        if (!v->present() && !synthetic) {
          return absl::NotFoundError(absl::StrFormat("model '%s': weight '%s' is missing", model.source, v->name));
        }
        in_place = in_place && v->present() && v->dtype == DType::kBF16;
      }
      const int64_t flat = static_cast<int64_t>(l) * E + e;
      ++tier->routed_experts_;
      tier->routed_bytes_ += tier->expert_bytes_;
      if (in_place) {
        for (const TensorView* v : t) tier->parts_[flat].push_back({v->data, mat * 2});
      } else {
        jobs.push_back({flat, {t[0], t[1], t[2]}});
      }
    }
  }
  if (jobs.empty()) return tier;
  tier->arena_bytes_ = static_cast<int64_t>(jobs.size()) * tier->expert_bytes_;
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  tier->arena_mapped_ = (static_cast<size_t>(tier->arena_bytes_) + page - 1) / page * page;
  void* arena = ::mmap(nullptr, tier->arena_mapped_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (arena == MAP_FAILED) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "expert cache host tier: cannot map %.2f GiB of host memory for %d experts", tier->arena_bytes_ / 1073741824.0,
        jobs.size()));
  }
  tier->arena_ = arena;
  auto* base = static_cast<char*>(arena);
  for (size_t j = 0; j < jobs.size(); ++j) {
    char* at = base + static_cast<int64_t>(j) * tier->expert_bytes_;
    for (int p = 0; p < 3; ++p) tier->parts_[jobs[j].flat].push_back({at + p * mat * 2, mat * 2});
  }
  // Synthetic fills first resolved on this thread (SyntheticTensorFill may fail); workers then take whole matrices.
  std::vector<SyntheticFill> fills(jobs.size() * 3);
  std::vector<bool> has_fill(jobs.size() * 3, false);
  for (size_t j = 0; j < jobs.size(); ++j) {
    for (int p = 0; p < 3; ++p) {
      if (jobs[j].t[p]->present()) continue;
      absl::StatusOr<SyntheticFill> f = SyntheticTensorFill(model, *jobs[j].t[p]);
      if (!f.ok()) return f.status();
      fills[j * 3 + p] = *f;
      has_fill[j * 3 + p] = true;
    }
  }
  std::atomic<size_t> next{0};
  auto work = [&]() {
    for (size_t i = next++; i < jobs.size() * 3; i = next++) {
      const size_t j = i / 3;
      const int p = static_cast<int>(i % 3);
      uint16_t* dst = reinterpret_cast<uint16_t*>(base + static_cast<int64_t>(j) * tier->expert_bytes_ + p * mat * 2);
      Materialize(*jobs[j].t[p], mat, has_fill[i] ? &fills[i] : nullptr, dst);
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < std::max(1, threads); ++t) pool.emplace_back(work);
  work();
  for (std::thread& t : pool) t.join();
  return tier;
}

}  // namespace moed::cuda
