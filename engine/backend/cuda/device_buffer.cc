// DeviceBuffer / PinnedBuffer allocation with clear out-of-memory errors.
#include "engine/backend/cuda/device_buffer.h"

#include <atomic>

#include "absl/strings/str_format.h"
#include "engine/backend/cuda/cuda_check.h"

namespace moed::cuda {
namespace {

std::atomic<uint64_t> g_allocation_epoch{0};

}  // namespace

uint64_t DeviceBuffer::AllocationEpoch() { return g_allocation_epoch.load(std::memory_order_relaxed); }

absl::Status DeviceBuffer::Reserve(size_t bytes, const char* what) {
  if (bytes <= bytes_) return absl::OkStatus();
  Release();
  if (bytes == 0) return absl::OkStatus();
  void* p = nullptr;
  const cudaError_t err = cudaMalloc(&p, bytes);
  if (err == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();  // clear the sticky-free allocation error
    size_t free_b = 0, total_b = 0;
    (void)cudaMemGetInfo(&free_b, &total_b);
    return absl::ResourceExhaustedError(absl::StrFormat(
        "out of GPU memory allocating %s: %.1f MiB requested, %.1f MiB free of %.1f MiB", what,
        bytes / 1048576.0, free_b / 1048576.0, total_b / 1048576.0));
  }
  if (err != cudaSuccess) return CudaStatus(err, absl::StrFormat("cudaMalloc(%s)", what));
  ptr_ = p;
  bytes_ = bytes;
  g_allocation_epoch.fetch_add(1, std::memory_order_relaxed);
  return absl::OkStatus();
}

void DeviceBuffer::Release() {
  if (ptr_ != nullptr) (void)cudaFree(ptr_);
  ptr_ = nullptr;
  bytes_ = 0;
}

PinnedBuffer::~PinnedBuffer() {
  if (ptr_ != nullptr) (void)cudaFreeHost(ptr_);
}

absl::Status PinnedBuffer::Reserve(size_t bytes, const char* what) {
  if (bytes <= bytes_) return absl::OkStatus();
  if (ptr_ != nullptr) (void)cudaFreeHost(ptr_);
  ptr_ = nullptr;
  bytes_ = 0;
  void* p = nullptr;
  const cudaError_t err = cudaMallocHost(&p, bytes);
  if (err != cudaSuccess) return CudaStatus(err, absl::StrFormat("cudaMallocHost(%s, %d bytes)", what, bytes));
  ptr_ = p;
  bytes_ = bytes;
  return absl::OkStatus();
}

}  // namespace moed::cuda
