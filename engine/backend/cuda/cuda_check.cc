// CUDA / cuBLAS status conversion, and the MOED_CUDA_CHECK launch checker.
#include "engine/backend/cuda/cuda_check.h"

#include <cstdlib>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_format.h"

namespace moed::cuda {

absl::Status CudaStatus(cudaError_t code, std::string_view what) {
  if (code == cudaSuccess) return absl::OkStatus();
  const std::string msg = absl::StrFormat("CUDA error in %s: %s (%s)", std::string(what), cudaGetErrorName(code),
                                          cudaGetErrorString(code));
  if (code == cudaErrorMemoryAllocation) return absl::ResourceExhaustedError(msg);
  return absl::InternalError(msg);
}

absl::Status CublasStatus(cublasStatus_t code, std::string_view what) {
  if (code == CUBLAS_STATUS_SUCCESS) return absl::OkStatus();
  const std::string msg = absl::StrFormat("cuBLAS error in %s: %s (%s)", std::string(what),
                                          cublasGetStatusName(code), cublasGetStatusString(code));
  if (code == CUBLAS_STATUS_ALLOC_FAILED) return absl::ResourceExhaustedError(msg);
  return absl::InternalError(msg);
}

LaunchChecker::LaunchChecker() {
  const char* env = std::getenv("MOED_CUDA_CHECK");
  enabled_ = env != nullptr && std::string_view(env) == "1";
}

absl::Status LaunchChecker::After(absl::Status launch, cudaStream_t stream, std::string_view op) const {
  if (!launch.ok()) {
    if (absl::StrContains(launch.message(), absl::string_view(op.data(), op.size()))) return launch;
    return absl::Status(launch.code(), absl::StrFormat("%s: %s", std::string(op), launch.message()));
  }
  if (!enabled_) return absl::OkStatus();
  cudaError_t err = cudaStreamSynchronize(stream);
  if (err == cudaSuccess) err = cudaGetLastError();
  return CudaStatus(err, absl::StrFormat("%s (MOED_CUDA_CHECK: synchronised after the launch)", std::string(op)));
}

}  // namespace moed::cuda
