// CUDA backend option checks (the CPU backend's rules, cpu_backend.cc CpuBackend::Create).
#include "engine/backend/cuda/host/backend_options.h"

#include <cmath>

#include "absl/strings/str_format.h"

namespace moed::cuda {

absl::Status ValidateCudaBackendOptions(const BackendOptions& o) {
  if (o.num_threads < 0) {
    return absl::InvalidArgumentError(absl::StrFormat("cuda backend: num_threads must be ≥ 0, got %d", o.num_threads));
  }
  if (!(o.moe_capacity_factor >= 0.0f) || !std::isfinite(o.moe_capacity_factor)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("cuda backend: moe_capacity_factor must be ≥ 0 and finite, got %g", o.moe_capacity_factor));
  }
  if (o.expert_cache_slots < 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("cuda backend: expert_cache_slots must be ≥ 0, got %d", o.expert_cache_slots));
  }
  if (o.expert_cache_bytes < 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("cuda backend: expert_cache_bytes must be ≥ 0, got %d", o.expert_cache_bytes));
  }
  if (o.cuda_moe != "grouped" && o.cuda_moe != "per-expert") {
    return absl::InvalidArgumentError(
        absl::StrFormat("cuda backend: cuda_moe must be 'grouped' or 'per-expert', got '%s'", o.cuda_moe));
  }
  if (o.cuda_attention != "flash" && o.cuda_attention != "simple") {
    return absl::InvalidArgumentError(
        absl::StrFormat("cuda backend: cuda_attention must be 'flash' or 'simple', got '%s'", o.cuda_attention));
  }
  if (o.cuda_sampling != "radix" && o.cuda_sampling != "bisect") {
    return absl::InvalidArgumentError(
        absl::StrFormat("cuda backend: cuda_sampling must be 'radix' or 'bisect', got '%s'", o.cuda_sampling));
  }
  if (!(o.router_zipf >= 0.0f) || !std::isfinite(o.router_zipf)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("cuda backend: router_zipf must be ≥ 0 and finite, got %g", o.router_zipf));
  }
  if (o.router_zipf > 0 && o.expert_cache_slots == 0 && o.expert_cache_bytes == 0) {
    return absl::InvalidArgumentError(
        "cuda backend: router_zipf (a benchmark's imposed routing skew) applies to the expert cache's path only; "
        "set an --expert-cache-* size with it");
  }
  return absl::OkStatus();
}

}  // namespace moed::cuda
