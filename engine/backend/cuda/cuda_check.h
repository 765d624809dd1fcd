// The one place CUDA runtime and cuBLAS error codes become absl::Status.
#pragma once

#include <string_view>

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "absl/status/status.h"

namespace moed::cuda {

// OK for cudaSuccess; cudaErrorMemoryAllocation → RESOURCE_EXHAUSTED; anything else → INTERNAL.
// The message names `what` (the call or op) and CUDA's own error name and text.
absl::Status CudaStatus(cudaError_t code, std::string_view what);
// OK for CUBLAS_STATUS_SUCCESS; CUBLAS_STATUS_ALLOC_FAILED → RESOURCE_EXHAUSTED; else INTERNAL.
absl::Status CublasStatus(cublasStatus_t code, std::string_view what);

// Debug mode for device runs: with MOED_CUDA_CHECK=1 in the environment (read once, when constructed), After()
// synchronises the stream after a launch and turns a pending device error into a Status naming the operation, so a
// faulting kernel is named instead of surfacing at the next synchronisation. Off (the default), After() is free.
class LaunchChecker {
 public:
  LaunchChecker();
  explicit LaunchChecker(bool enabled) : enabled_(enabled) {}
  bool enabled() const { return enabled_; }
  // `launch`: the status of the launch call itself (returned, with `op` prefixed, when not OK).
  absl::Status After(absl::Status launch, cudaStream_t stream, std::string_view op) const;
  absl::Status After(cudaError_t launch, cudaStream_t stream, std::string_view op) const {
    return After(CudaStatus(launch, op), stream, op);
  }

 private:
  bool enabled_ = false;
};

}  // namespace moed::cuda

// Returns a Status from the enclosing function when a CUDA runtime call fails.
#define MOED_CUDA_RETURN_IF_ERROR(expr) MOED_RETURN_IF_ERROR(::moed::cuda::CudaStatus((expr), #expr))
// Returns a Status from the enclosing function when a cuBLAS call fails.
#define MOED_CUBLAS_RETURN_IF_ERROR(expr) MOED_RETURN_IF_ERROR(::moed::cuda::CublasStatus((expr), #expr))
