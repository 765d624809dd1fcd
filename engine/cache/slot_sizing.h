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

// Start-up without any cache flag: every routed expert must be resident. OK when dense_bytes + routed_bytes fit in
// free_device_bytes; otherwise RESOURCE_EXHAUSTED (a clear start-up error, never a silent cache) giving the three
// sizes and naming the flags that keep part of the experts in host memory: --expert-cache-fraction with the largest
// share that fits (rounded down to 0.01; less leaves room for the KV cache) and --expert-cache-bytes.
absl::Status RequireResidentExpertsFit(int64_t dense_bytes, int64_t routed_bytes, int64_t free_device_bytes);

// The largest --expert-cache-fraction whose experts fit in `room` bytes (rounded down to 0.01; 0 when not even one
// hundredth fits). routed_bytes > 0.
double LargestFittingFraction(int64_t routed_bytes, int64_t room);

}  // namespace moed::cache
