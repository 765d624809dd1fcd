// MemcpyTransfer: the simulated device tier of the CPU backend — a preallocated pool of fp32 slots filled by memcpy
// from the host tier (the backend's fp32 expert weights).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/cache/expert_transfer.h"

namespace moed::cache {

// One contiguous run of host floats; an expert's parts are copied back to back into its slot.
struct HostPart {
  const float* data = nullptr;  // not owned; must outlive the transfer
  int64_t count = 0;            // floats
};

class MemcpyTransfer : public ExpertTransfer {
 public:
  // host: (num_layers * num_experts) entries indexed by ExpertKey::Flat, each the parts of one expert (empty for
  // experts that do not exist, e.g. of dense layers). Every slot holds the largest expert.
  // RESOURCE_EXHAUSTED when the pool cannot be allocated.
  static absl::StatusOr<std::unique_ptr<MemcpyTransfer>> Create(int num_experts, std::vector<std::vector<HostPart>> host,
                                                                int num_slots);

  int num_slots() const override { return num_slots_; }
  int64_t LoadBytes(const ExpertKey& key) const override;
  absl::Status Load(const ExpertKey& key, int slot) override;
  absl::Status Wait(int slot) override;

  // The slot's floats: (slot_floats) with the loaded expert's parts back to back from the start.
  const float* slot_data(int slot) const { return pool_.data() + static_cast<int64_t>(slot) * slot_floats_; }
  int64_t slot_floats() const { return slot_floats_; }

 private:
  MemcpyTransfer(int num_experts, std::vector<std::vector<HostPart>> host, int num_slots, int64_t slot_floats);
  const std::vector<HostPart>* PartsOf(const ExpertKey& key) const;

  int num_experts_;
  std::vector<std::vector<HostPart>> host_;
  int num_slots_;
  int64_t slot_floats_;
  std::vector<float> pool_;  // (num_slots, slot_floats)
};

}  // namespace moed::cache
