// MemcpyTransfer: slot pool allocation and synchronous memcpy loads.
#include "engine/cache/memcpy_transfer.h"

#include <algorithm>
#include <cstring>
#include <new>

#include "absl/strings/str_format.h"

namespace moed::cache {
namespace {

int64_t PartsFloats(const std::vector<HostPart>& parts) {
  int64_t n = 0;
  for (const HostPart& p : parts) n += p.count;
  return n;
}

}  // namespace

absl::StatusOr<std::unique_ptr<MemcpyTransfer>> MemcpyTransfer::Create(int num_experts,
                                                                      std::vector<std::vector<HostPart>> host,
                                                                      int num_slots) {
  if (num_experts < 1 || num_slots < 1) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "expert slot pool: need ≥ 1 expert and ≥ 1 slot, got %d and %d", num_experts, num_slots));
  }
  int64_t slot_floats = 0;
  for (const auto& parts : host) slot_floats = std::max(slot_floats, PartsFloats(parts));
  try {
    return std::unique_ptr<MemcpyTransfer>(new MemcpyTransfer(num_experts, std::move(host), num_slots, slot_floats));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(absl::StrFormat("expert slot pool: cannot allocate %d slots of %d bytes",
                                                        num_slots, slot_floats * static_cast<int64_t>(sizeof(float))));
  }
}

MemcpyTransfer::MemcpyTransfer(int num_experts, std::vector<std::vector<HostPart>> host, int num_slots,
                               int64_t slot_floats)
    : num_experts_(num_experts),
      host_(std::move(host)),
      num_slots_(num_slots),
      slot_floats_(slot_floats),
      pool_(static_cast<size_t>(num_slots) * slot_floats, 0.0f) {}

const std::vector<HostPart>* MemcpyTransfer::PartsOf(const ExpertKey& key) const {
  if (key.layer < 0 || key.expert < 0 || key.expert >= num_experts_) return nullptr;
  const int64_t i = key.Flat(num_experts_);
  if (i >= static_cast<int64_t>(host_.size()) || host_[i].empty()) return nullptr;
  return &host_[i];
}

int64_t MemcpyTransfer::LoadBytes(const ExpertKey& key) const {
  const std::vector<HostPart>* parts = PartsOf(key);
  return parts == nullptr ? 0 : PartsFloats(*parts) * static_cast<int64_t>(sizeof(float));
}

absl::Status MemcpyTransfer::Load(const ExpertKey& key, int slot) {
  const std::vector<HostPart>* parts = PartsOf(key);
  if (parts == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrFormat("expert slot pool: no host weights for (layer %d, expert %d)", key.layer, key.expert));
  }
  if (slot < 0 || slot >= num_slots_) {
    return absl::InvalidArgumentError(absl::StrFormat("expert slot pool: slot %d outside [0, %d)", slot, num_slots_));
  }
  float* dst = pool_.data() + static_cast<int64_t>(slot) * slot_floats_;
  for (const HostPart& p : *parts) {
    std::memcpy(dst, p.data, p.count * sizeof(float));
    dst += p.count;
  }
  return absl::OkStatus();
}

absl::Status MemcpyTransfer::Wait(int slot) {
  if (slot < 0 || slot >= num_slots_) {
    return absl::InvalidArgumentError(absl::StrFormat("expert slot pool: slot %d outside [0, %d)", slot, num_slots_));
  }
  return absl::OkStatus();
}

}  // namespace moed::cache
