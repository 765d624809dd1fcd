// ExpertTransfer: copies one expert's weights from the host tier into a device-tier slot. The CPU backend
// implements it with memcpy into a preallocated fp32 slot pool (MemcpyTransfer); a GPU backend implements it
// with pinned host memory and an async copy on a dedicated stream.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "engine/cache/expert_key.h"

namespace moed::cache {

// Owned by the backend; called from its engine thread only.
class ExpertTransfer {
 public:
  virtual ~ExpertTransfer() = default;
  virtual int num_slots() const = 0;
  // Bytes one Load of `key` copies.
  virtual int64_t LoadBytes(const ExpertKey& key) const = 0;
  // Starts copying `key`'s weights into `slot` (overwriting it). Synchronous implementations finish here.
  // INVALID_ARGUMENT for a key without host weights or a slot outside [0, num_slots()).
  virtual absl::Status Load(const ExpertKey& key, int slot) = 0;
  // Returns once the last Load into `slot` has landed (a no-op when loads are synchronous).
  virtual absl::Status Wait(int slot) = 0;
};

}  // namespace moed::cache
