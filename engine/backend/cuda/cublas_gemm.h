// cuBLAS handle wrapper and the one GEMM shape the engine uses: y (n, out) = x (n, in) · Wᵀ, W (out, in) row-major.
#pragma once

#include <cstdint>

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace moed::cuda {

// Owns a cuBLAS handle bound to one stream. Not thread-safe (one engine thread).
class CublasHandle {
 public:
  static absl::StatusOr<CublasHandle> Create(cudaStream_t stream);
  CublasHandle() = default;
  ~CublasHandle();
  CublasHandle(CublasHandle&& o) noexcept;
  CublasHandle& operator=(CublasHandle&& o) noexcept;
  CublasHandle(const CublasHandle&) = delete;
  CublasHandle& operator=(const CublasHandle&) = delete;

  cublasHandle_t get() const { return handle_; }

 private:
  cublasHandle_t handle_ = nullptr;
};

enum class OutType { kF32, kBF16 };

// y (n, out) = alpha · x (n, in) · Wᵀ + beta · y, bf16 inputs, fp32 accumulation; y is fp32 or bf16 with row stride
// `ldy` elements (0 → out). Leading dimensions of x and W are `in`. n == 0 is a no-op.
absl::Status GemmXWt(const CublasHandle& h, const __nv_bfloat16* x, int64_t n, int64_t in, const __nv_bfloat16* w,
                     int64_t out, void* y, OutType y_type, float beta = 0.0f, int64_t ldy = 0);

}  // namespace moed::cuda
