// The expert cache's host tier for the CUDA backend: every routed expert's bf16 weights in host memory, laid out as
// its device slot is ([gate (F,H) | up (F,H) | down (H,F)]). bf16 checkpoint tensors are used in place (the mapped
// shards); other dtypes are converted and synthetic experts generated into an owned arena, on several threads.
// No CUDA headers (pinning is CudaExpertTransfer's); unit-tested on the CPU (tests/unit/backend/expert_host_tier_test.cc).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/model/model.h"

namespace moed::cuda {

// One contiguous run of host bytes of an expert (bf16 gate, up or down); an expert's parts land back to back in its
// slot. Not owned: must outlive whoever copies from it.
struct HostBytes {
  const void* data = nullptr;
  int64_t bytes = 0;
};

// Immutable once built; owns the arena its parts may point into. Readable from any thread.
class ExpertHostTier {
 public:
  // Builds the tier of every routed expert of `model` (MoE layers only). `threads` ≥ 1: workers converting or
  // generating experts. Errors: a routed expert tensor missing from a non-synthetic model, or a shape mismatch.
  static absl::StatusOr<std::unique_ptr<ExpertHostTier>> Build(const Model& model, int threads);
  ~ExpertHostTier();
  ExpertHostTier(const ExpertHostTier&) = delete;
  ExpertHostTier& operator=(const ExpertHostTier&) = delete;

  // (num_layers * num_experts) by ExpertKey::Flat: gate, up, down of each routed expert; empty for dense layers.
  const std::vector<std::vector<HostBytes>>& parts() const { return parts_; }
  int64_t expert_bytes() const { return expert_bytes_; }      // one routed expert, all three matrices
  int64_t routed_bytes() const { return routed_bytes_; }      // every routed expert
  int64_t arena_bytes() const { return arena_bytes_; }        // of those, generated or converted here
  int routed_experts() const { return routed_experts_; }

 private:
  ExpertHostTier() = default;
  std::vector<std::vector<HostBytes>> parts_;
  int64_t expert_bytes_ = 0, routed_bytes_ = 0, arena_bytes_ = 0;
  int routed_experts_ = 0;
  void* arena_ = nullptr;  // page-aligned anonymous mapping of arena_bytes_ (rounded up to pages)
  size_t arena_mapped_ = 0;
};

}  // namespace moed::cuda
