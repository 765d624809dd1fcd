// CudaExpertTransfer: pinned host tier, device slot pool, async copies on the copy stream ordered by events.
#include "engine/backend/cuda/cuda_expert_transfer.h"

#include <unistd.h>

#include <algorithm>

#include "absl/strings/str_format.h"
#include "engine/backend/cuda/cuda_check.h"
#include "engine/backend/cuda/host/pin_ranges.h"
#include "engine/common/status_macros.h"

namespace moed::cuda {

absl::StatusOr<std::unique_ptr<CudaExpertTransfer>> CudaExpertTransfer::Create(
    int num_experts, std::vector<std::vector<HostBytes>> host, int num_slots, cudaStream_t compute_stream,
    bool pin) {
  if (num_experts < 1 || num_slots < 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("cuda expert slots: need ≥ 1 expert and slot, got %d and %d", num_experts, num_slots));
  }
  int64_t largest = 0;
  for (const auto& parts : host) {
    int64_t bytes = 0;
    for (const HostBytes& p : parts) bytes += p.bytes;
    largest = std::max(largest, bytes);
  }
  if (largest == 0) return absl::InvalidArgumentError("cuda expert slots: no expert has host weights");
  const int64_t slot_bytes = (largest + 255) / 256 * 256;  // keeps every slot 256-byte aligned
  std::unique_ptr<CudaExpertTransfer> t(
      new CudaExpertTransfer(num_experts, std::move(host), num_slots, slot_bytes, compute_stream));
  MOED_RETURN_IF_ERROR(t->pool_.Reserve(static_cast<size_t>(num_slots) * slot_bytes, "expert cache slots"));
  MOED_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&t->copy_stream_, cudaStreamNonBlocking));
  MOED_CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(&t->compute_mark_, cudaEventDisableTiming));
  t->slot_ready_.assign(num_slots, nullptr);
  for (cudaEvent_t& e : t->slot_ready_) MOED_CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  if (pin) MOED_RETURN_IF_ERROR(t->PinHostTier());
  return t;
}

// Each page range once (host/pin_ranges.h). A read-only mapping (the checkpoint's mmap'd shards, PROT_READ) cannot
// be registered with the default flags; it is registered read-only where the device supports that (the copies only
// read it), else the error says so.
absl::Status CudaExpertTransfer::PinHostTier() {
  std::vector<AddressRange> parts;
  for (const auto& expert : host_) {
    for (const HostBytes& p : expert) {
      const auto at = reinterpret_cast<uintptr_t>(p.data);
      parts.push_back({at, at + static_cast<uintptr_t>(p.bytes)});
    }
  }
  int device = 0, read_only_ok = 0;
  MOED_CUDA_RETURN_IF_ERROR(cudaGetDevice(&device));
  if (cudaDeviceGetAttribute(&read_only_ok, cudaDevAttrHostRegisterReadOnlySupported, device) != cudaSuccess) {
    (void)cudaGetLastError();
    read_only_ok = 0;
  }
  for (const AddressRange& r : PageRanges(std::move(parts), static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE)))) {
    void* ptr = reinterpret_cast<void*>(r.begin);
    const size_t bytes = r.end - r.begin;
    cudaError_t err = cudaHostRegister(ptr, bytes, cudaHostRegisterDefault);
    if (err == cudaErrorHostMemoryAlreadyRegistered) {
      (void)cudaGetLastError();  // pinned by its owner already
      continue;
    }
    if (err != cudaSuccess && read_only_ok) {
      (void)cudaGetLastError();
      err = cudaHostRegister(ptr, bytes, cudaHostRegisterReadOnly);
    }
    if (err != cudaSuccess) {
      (void)cudaGetLastError();
      return absl::FailedPreconditionError(absl::StrFormat(
          "expert cache: cannot pin %.2f MiB of host expert weights at %p (%s: %s)%s", bytes / 1048576.0, ptr,
          cudaGetErrorName(err), cudaGetErrorString(err),
          read_only_ok ? "" : "; the device does not support registering read-only memory (mmap'd shards)"));
    }
    registered_.push_back(ptr);
  }
  return absl::OkStatus();
}

CudaExpertTransfer::~CudaExpertTransfer() {
  if (copy_stream_ != nullptr) cudaStreamSynchronize(copy_stream_);
  for (const void* p : registered_) cudaHostUnregister(const_cast<void*>(p));
  for (cudaEvent_t e : slot_ready_) {
    if (e != nullptr) cudaEventDestroy(e);
  }
  for (const Timed& t : in_flight_) {
    cudaEventDestroy(t.start);
    cudaEventDestroy(t.end);
  }
  for (const Timed& t : spare_) {
    cudaEventDestroy(t.start);
    cudaEventDestroy(t.end);
  }
  if (compute_mark_ != nullptr) cudaEventDestroy(compute_mark_);
  if (copy_stream_ != nullptr) cudaStreamDestroy(copy_stream_);
}

const std::vector<HostBytes>* CudaExpertTransfer::PartsOf(const cache::ExpertKey& key) const {
  const int64_t flat = static_cast<int64_t>(key.layer) * num_experts_ + key.expert;
  if (key.layer < 0 || key.expert < 0 || key.expert >= num_experts_ || flat >= static_cast<int64_t>(host_.size()) ||
      host_[flat].empty()) {
    return nullptr;
  }
  return &host_[flat];
}

int64_t CudaExpertTransfer::LoadBytes(const cache::ExpertKey& key) const {
  const std::vector<HostBytes>* parts = PartsOf(key);
  int64_t bytes = 0;
  if (parts != nullptr) {
    for (const HostBytes& p : *parts) bytes += p.bytes;
  }
  return bytes;
}

absl::Status CudaExpertTransfer::Load(const cache::ExpertKey& key, int slot) {
  const std::vector<HostBytes>* parts = PartsOf(key);
  if (parts == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrFormat("cuda expert slots: no host weights for layer %d expert %d", key.layer, key.expert));
  }
  if (slot < 0 || slot >= num_slots_) {
    return absl::InvalidArgumentError(absl::StrFormat("cuda expert slots: slot %d outside [0, %d)", slot, num_slots_));
  }
  Timed timed;
  if (!spare_.empty()) {
    timed = spare_.back();
    spare_.pop_back();
  } else {
    MOED_CUDA_RETURN_IF_ERROR(cudaEventCreate(&timed.start));
    MOED_CUDA_RETURN_IF_ERROR(cudaEventCreate(&timed.end));
  }
  // The slot's previous expert may still be read by queued kernels: copy only after them.
  MOED_CUDA_RETURN_IF_ERROR(cudaEventRecord(compute_mark_, compute_));
  MOED_CUDA_RETURN_IF_ERROR(cudaStreamWaitEvent(copy_stream_, compute_mark_, 0));
  MOED_CUDA_RETURN_IF_ERROR(cudaEventRecord(timed.start, copy_stream_));
  char* dst = static_cast<char*>(slot_ptr(slot));
  for (const HostBytes& p : *parts) {
    MOED_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(dst, p.data, p.bytes, cudaMemcpyHostToDevice, copy_stream_));
    dst += p.bytes;
  }
  MOED_CUDA_RETURN_IF_ERROR(cudaEventRecord(timed.end, copy_stream_));
  MOED_CUDA_RETURN_IF_ERROR(cudaEventRecord(slot_ready_[slot], copy_stream_));
  in_flight_.push_back(timed);
  return absl::OkStatus();
}

absl::Status CudaExpertTransfer::Wait(int slot) {
  if (slot < 0 || slot >= num_slots_) {
    return absl::InvalidArgumentError(absl::StrFormat("cuda expert slots: slot %d outside [0, %d)", slot, num_slots_));
  }
  MOED_CUDA_RETURN_IF_ERROR(cudaStreamWaitEvent(compute_, slot_ready_[slot], 0));
  return absl::OkStatus();
}

void CudaExpertTransfer::TakeTimings(std::vector<double>* seconds) {
  while (!in_flight_.empty()) {
    const Timed t = in_flight_.front();
    if (cudaEventQuery(t.end) != cudaSuccess) {
      (void)cudaGetLastError();  // cudaErrorNotReady is not an error to keep
      break;
    }
    float ms = 0;
    if (cudaEventElapsedTime(&ms, t.start, t.end) != cudaSuccess) ms = 0;  // still one entry per load
    seconds->push_back(ms / 1e3);
    in_flight_.pop_front();
    spare_.push_back(t);
  }
}

}  // namespace moed::cuda
