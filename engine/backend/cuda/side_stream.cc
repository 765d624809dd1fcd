// SideStream: creation, and the event fork/join with the compute stream.
#include "engine/backend/cuda/side_stream.h"

#include "engine/backend/cuda/cuda_check.h"
#include "engine/common/status_macros.h"

namespace moed::cuda {

absl::StatusOr<std::unique_ptr<SideStream>> SideStream::Create(size_t cublas_workspace_bytes) {
  std::unique_ptr<SideStream> s(new SideStream());
  MOED_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&s->stream_, cudaStreamNonBlocking));
  MOED_CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(&s->fork_, cudaEventDisableTiming));
  MOED_CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(&s->join_, cudaEventDisableTiming));
  MOED_ASSIGN_OR_RETURN(s->cublas_, CublasHandle::Create(s->stream_));
  MOED_RETURN_IF_ERROR(s->workspace_.Reserve(cublas_workspace_bytes, "side-stream cuBLAS workspace"));
  MOED_CUBLAS_RETURN_IF_ERROR(cublasSetWorkspace(s->cublas_.get(), s->workspace_.get(), cublas_workspace_bytes));
  return s;
}

SideStream::~SideStream() {
  if (stream_ != nullptr) (void)cudaStreamSynchronize(stream_);
  cublas_ = CublasHandle();
  workspace_ = DeviceBuffer();
  if (fork_ != nullptr) (void)cudaEventDestroy(fork_);
  if (join_ != nullptr) (void)cudaEventDestroy(join_);
  if (stream_ != nullptr) (void)cudaStreamDestroy(stream_);
}

absl::Status SideStream::Fork(cudaStream_t main) {
  MOED_CUDA_RETURN_IF_ERROR(cudaEventRecord(fork_, main));
  return CudaStatus(cudaStreamWaitEvent(stream_, fork_, 0), "side stream fork");
}

absl::Status SideStream::Join(cudaStream_t main) {
  MOED_CUDA_RETURN_IF_ERROR(cudaEventRecord(join_, stream_));
  return CudaStatus(cudaStreamWaitEvent(main, join_, 0), "side stream join");
}

}  // namespace moed::cuda
