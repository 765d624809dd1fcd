// A second stream for work that overlaps the compute stream inside one step (the shared expert beside the routed
// experts): its own cuBLAS handle and fixed workspace, and the fork/join events. The fork and the join are event
// record/wait pairs, which a CUDA graph capture follows from the compute stream into this one and back, so a step
// that uses it stays capturable.
#pragma once

#include <cstddef>
#include <memory>

#include <cuda_runtime.h>

#include "absl/status/statusor.h"
#include "engine/backend/cuda/cublas_gemm.h"
#include "engine/backend/cuda/device_buffer.h"

namespace moed::cuda {

// Owned by the backend; not thread-safe (the engine thread).
class SideStream {
 public:
  // A non-blocking stream, a cuBLAS handle on it with a fixed workspace of `cublas_workspace_bytes` (the compute
  // handle's size, so cuBLAS picks the same algorithms and the results are the same bits), and two events.
  static absl::StatusOr<std::unique_ptr<SideStream>> Create(size_t cublas_workspace_bytes);
  ~SideStream();
  SideStream(const SideStream&) = delete;
  SideStream& operator=(const SideStream&) = delete;

  cudaStream_t stream() const { return stream_; }
  const CublasHandle& cublas() const { return cublas_; }
  // Work queued on stream() from now on runs after everything queued on `main` so far.
  absl::Status Fork(cudaStream_t main);
  // Work queued on `main` from now on runs after everything queued on stream() so far.
  absl::Status Join(cudaStream_t main);

 private:
  SideStream() = default;
  cudaStream_t stream_ = nullptr;  // destroyed last (the handle and buffer are released first)
  cudaEvent_t fork_ = nullptr, join_ = nullptr;
  CublasHandle cublas_;
  DeviceBuffer workspace_;
};

}  // namespace moed::cuda
