// CUDA / cuBLAS status conversion.
#include "engine/backend/cuda/cuda_check.h"

#include <string>

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

}  // namespace moed::cuda
