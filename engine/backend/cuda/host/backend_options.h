// Validation of BackendOptions for the CUDA backend: every field checked as the CPU backend checks it.
#pragma once

#include "absl/status/status.h"
#include "engine/backend/backend.h"

namespace moed::cuda {

// INVALID_ARGUMENT naming the field for what the CPU backend rejects (moe_capacity_factor negative, NaN or
// infinite; num_threads, expert_cache_slots or expert_cache_bytes negative; cuda_moe / cuda_attention / cuda_sampling not one of
// their names); UNIMPLEMENTED when the hot-expert
// cache is asked for (the CUDA backend has no device tier yet).
absl::Status ValidateCudaBackendOptions(const BackendOptions& options);

}  // namespace moed::cuda
