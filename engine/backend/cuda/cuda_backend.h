// The CUDA backend: bf16 weights on one device, fp32 activations/accumulation, paged bf16 KV cache, cuBLAS GEMMs,
// device-side routing, expert permutation, grouped expert kernels, flash-decoding, sampling, decode CUDA graphs. Implements engine/backend/backend.h.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "engine/backend/backend.h"
#include "engine/model/model.h"

namespace moed {

enum class CudaDeviceState {
  kUsable,    // device 0 has compute capability ≥ 8.0 (build targets sm_80, sm_89, sm_90) and the runtime works
  kNoDevice,  // no CUDA driver installed, or the driver sees no device: the one state GPU tests may skip on
  kUnusable,  // a device or driver is there but unusable: driver/runtime mismatch, another runtime error, or a
              // compute capability below 8.0
};
struct CudaDeviceReport {
  CudaDeviceState state = CudaDeviceState::kNoDevice;
  std::string detail;  // what was found, with the driver and runtime versions where they matter
};

// Asks the CUDA runtime about device 0 and says which of the three states holds, and why.
CudaDeviceReport CheckCudaDevice();
// CheckCudaDevice().state == kUsable.
bool CudaDeviceUsable();

// Uploads the model's weights to device 0. Errors: bad options → as the CPU backend (host/backend_options.h);
// no usable device → UNAVAILABLE with CheckCudaDevice's detail; not enough GPU memory →
// RESOURCE_EXHAUSTED with the numbers; unsupported shapes (more than 256 experts, head_dim > 256) → INVALID_ARGUMENT.
absl::StatusOr<std::unique_ptr<Backend>> CreateCudaBackend(std::shared_ptr<const Model> model,
                                                           const BackendOptions& options);

}  // namespace moed
