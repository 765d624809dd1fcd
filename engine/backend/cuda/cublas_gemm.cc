// cuBLAS GEMM wrapper (column-major cuBLAS seen from row-major tensors).
#include "engine/backend/cuda/cublas_gemm.h"

#include <utility>

#include "absl/strings/str_format.h"
#include "engine/backend/cuda/cuda_check.h"
#include "engine/common/status_macros.h"

namespace moed::cuda {

absl::StatusOr<CublasHandle> CublasHandle::Create(cudaStream_t stream) {
  CublasHandle h;
  MOED_CUBLAS_RETURN_IF_ERROR(cublasCreate(&h.handle_));
  MOED_CUBLAS_RETURN_IF_ERROR(cublasSetStream(h.handle_, stream));
  return h;
}

CublasHandle::~CublasHandle() {
  if (handle_ != nullptr) (void)cublasDestroy(handle_);
}

CublasHandle::CublasHandle(CublasHandle&& o) noexcept : handle_(std::exchange(o.handle_, nullptr)) {}

CublasHandle& CublasHandle::operator=(CublasHandle&& o) noexcept {
  if (this != &o) {
    if (handle_ != nullptr) (void)cublasDestroy(handle_);
    handle_ = std::exchange(o.handle_, nullptr);
  }
  return *this;
}

absl::Status GemmXWt(const CublasHandle& h, const __nv_bfloat16* x, int64_t n, int64_t in, const __nv_bfloat16* w,
                     int64_t out, void* y, OutType y_type, float beta, int64_t ldy) {
  if (n == 0 || out == 0) return absl::OkStatus();
  if (ldy == 0) ldy = out;
  const float alpha = 1.0f;
  // Column-major view: Yᵀ (out, n) = op(W_cm (in, out))ᵀ · X_cm (in, n).
  const cublasStatus_t st = cublasGemmEx_64(
      h.get(), CUBLAS_OP_T, CUBLAS_OP_N, out, n, in, &alpha, w, CUDA_R_16BF, in, x, CUDA_R_16BF, in, &beta, y,
      y_type == OutType::kF32 ? CUDA_R_32F : CUDA_R_16BF, ldy, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  return CublasStatus(st, absl::StrFormat("cublasGemmEx (n=%d, in=%d, out=%d)", n, in, out));
}

}  // namespace moed::cuda
