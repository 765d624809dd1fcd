// DeviceBuffer: an owned, grow-only block of device memory (cudaMalloc/cudaFree). Move-only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>

#include <cuda_runtime.h>

#include "absl/status/status.h"

namespace moed::cuda {

class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  ~DeviceBuffer() { Release(); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      Release();
      ptr_ = std::exchange(o.ptr_, nullptr);
      bytes_ = std::exchange(o.bytes_, 0);
    }
    return *this;
  }

  // Ensures at least `bytes` are allocated; contents are not preserved when it grows.
  // Out of memory → RESOURCE_EXHAUSTED naming `what`, the request and the free memory.
  absl::Status Reserve(size_t bytes, const char* what);

  void* get() const { return ptr_; }
  template <typename T>
  T* as() const { return static_cast<T*>(ptr_); }
  size_t bytes() const { return bytes_; }

  // Counts every device allocation made through Reserve (process-wide, engine thread): a captured CUDA graph holds
  // buffer addresses, so it is valid only while this has not moved since its capture.
  static uint64_t AllocationEpoch();

 private:
  void Release();
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// Pinned (page-locked) host memory, grow-only, for fast and asynchronous copies.
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  ~PinnedBuffer();
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;

  absl::Status Reserve(size_t bytes, const char* what);
  template <typename T>
  T* as() const { return static_cast<T*>(ptr_); }
  size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace moed::cuda
