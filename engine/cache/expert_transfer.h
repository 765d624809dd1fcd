// ExpertTransfer: copies one expert's weights from the host tier into a device-tier slot. The CPU backend
// implements it with memcpy into a preallocated fp32 slot pool (MemcpyTransfer); a GPU backend implements it
// with pinned host memory and an async copy on a dedicated stream.
#pragma once

#include <cstdint>
#include <vector>

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
  // Returns once the last Load into `slot` has landed (a no-op when loads are synchronous). An asynchronous
  // transfer may instead order the consumer's work after the load (a device stream waiting on the slot's event).
  virtual absl::Status Wait(int slot) = 0;
  // Asynchronous transfers time their own copies (the host clock sees only the launch): they say so here and
  // append the durations, in seconds, of the loads that have completed since the last call, in issue order.
  virtual bool asynchronous() const { return false; }
  virtual void TakeTimings(std::vector<double>* /*seconds*/) {}
};

}  // namespace moed::cache
