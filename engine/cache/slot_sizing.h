// Slot sizing: how many expert slots a device tier gets from the cache flags and the device memory left after the
// dense weights and the KV reservation. Plain arithmetic, shared by the backends and tested on the CPU.
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"

namespace moed::cache {

struct SlotSizingInput {
  int slots = 0;                  // --expert-cache-slots (0 = unset)
  int64_t bytes = 0;              // --expert-cache-bytes (0 = unset)
  int routed_experts = 0;         // routed experts of the model, all layers
  int64_t expert_bytes = 0;       // bytes of one routed expert in the slot's layout (gate, up, down)
  int64_t free_device_bytes = -1; // device memory free after dense weights and the KV reservation; -1 = unbounded
                                  // (the CPU tier's host memory)
};

// Slots for the device tier: `slots` when set, else bytes / expert_bytes; clamped to the routed experts (a cache as
// large as the model holds it all). 0 = cache off (neither flag set, or no routed experts).
// INVALID_ARGUMENT naming the flag when the request holds no whole expert (bytes < expert_bytes), or when the slots
// asked for do not fit in free_device_bytes (the message gives both sizes in bytes).
absl::StatusOr<int> DeviceSlotCount(const SlotSizingInput& in);

}  // namespace moed::cache
