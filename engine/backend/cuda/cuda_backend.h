// The CUDA backend: bf16 weights on one device, fp32 activations/accumulation, paged bf16 KV cache, cuBLAS GEMMs,
// device-side routing, expert permutation and sampling. Implements engine/backend/backend.h.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "engine/backend/backend.h"
#include "engine/model/model.h"

namespace moed {

// True when a CUDA device of compute capability ≥ 9.0 (the sm_90 build target) is present and the runtime works.
bool CudaDeviceUsable();

// Uploads the model's weights to device 0. Errors: no usable device → UNAVAILABLE; not enough GPU memory →
// RESOURCE_EXHAUSTED with the numbers; unsupported shapes (more than 256 experts, head_dim > 256) → INVALID_ARGUMENT.
absl::StatusOr<std::unique_ptr<Backend>> CreateCudaBackend(std::shared_ptr<const Model> model,
                                                           const BackendOptions& options);

}  // namespace moed
