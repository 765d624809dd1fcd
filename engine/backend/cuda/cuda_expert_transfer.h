// CudaExpertTransfer: the expert cache's GPU tiers — pinned host weights (the host tier) copied into a device pool
// of expert slots (the device tier) with cudaMemcpyAsync on a dedicated copy stream, one event per slot.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include <cuda_runtime.h>

#include "absl/status/statusor.h"
#include "engine/backend/cuda/device_buffer.h"
#include "engine/backend/cuda/host/expert_host_tier.h"
#include "engine/cache/expert_transfer.h"

namespace moed::cuda {

// HostBytes (host/expert_host_tier.h): one run of an expert's host bytes; not owned, must outlive the transfer.

// Engine thread only. Ordering, with no host synchronisation:
// - Load(key, slot): the copy stream first waits for everything already queued on the compute stream (earlier
//   readers of the slot's old expert), then copies, then records the slot's event.
// - Wait(slot): the compute stream waits on the slot's event; kernels queued after it see the new weights.
// Asynchronous: each load is timed by a pair of events; TakeTimings reports those that have completed.
class CudaExpertTransfer : public cache::ExpertTransfer {
 public:
  // host: (num_layers * num_experts) entries indexed by ExpertKey::Flat (empty for experts that do not exist).
  // Every slot holds the largest expert, rounded up to 256 bytes. `pin`: cudaHostRegister the parts' pages, each
  // page once, read-only mappings with cudaHostRegisterReadOnly (the host tier must be pinned for the copies to be
  // asynchronous; memory already registered is accepted).
  // RESOURCE_EXHAUSTED when the slot pool does not fit in device memory.
  static absl::StatusOr<std::unique_ptr<CudaExpertTransfer>> Create(int num_experts,
                                                                    std::vector<std::vector<HostBytes>> host,
                                                                    int num_slots, cudaStream_t compute_stream,
                                                                    bool pin = true);
  ~CudaExpertTransfer() override;

  int num_slots() const override { return num_slots_; }
  int64_t LoadBytes(const cache::ExpertKey& key) const override;
  absl::Status Load(const cache::ExpertKey& key, int slot) override;
  absl::Status Wait(int slot) override;
  bool asynchronous() const override { return true; }
  void TakeTimings(std::vector<double>* seconds) override;

  // Device address of `slot`'s first byte; the loaded expert's parts follow back to back.
  void* slot_ptr(int slot) const { return pool_.as<char>() + static_cast<int64_t>(slot) * slot_bytes_; }
  int64_t slot_bytes() const { return slot_bytes_; }
  cudaStream_t copy_stream() const { return copy_stream_; }

 private:
  CudaExpertTransfer(int num_experts, std::vector<std::vector<HostBytes>> host, int num_slots, int64_t slot_bytes,
                     cudaStream_t compute_stream)
      : num_experts_(num_experts), host_(std::move(host)), num_slots_(num_slots), slot_bytes_(slot_bytes),
        compute_(compute_stream) {}
  const std::vector<HostBytes>* PartsOf(const cache::ExpertKey& key) const;
  absl::Status PinHostTier();

  int num_experts_;
  std::vector<std::vector<HostBytes>> host_;
  int num_slots_;
  int64_t slot_bytes_;
  cudaStream_t compute_;
  cudaStream_t copy_stream_ = nullptr;
  cudaEvent_t compute_mark_ = nullptr;     // recorded on the compute stream before each copy
  std::vector<cudaEvent_t> slot_ready_;    // (num_slots) the slot's last copy has landed
  struct Timed {
    cudaEvent_t start, end;
  };
  std::deque<Timed> in_flight_;            // timed loads in issue order (one copy stream: they complete in order)
  std::vector<Timed> spare_;               // event pairs to reuse
  std::vector<const void*> registered_;    // host parts this transfer pinned (unregistered on destruction)
  DeviceBuffer pool_;                      // (num_slots, slot_bytes)
};

}  // namespace moed::cuda
