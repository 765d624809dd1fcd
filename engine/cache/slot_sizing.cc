// Slot sizing arithmetic for the expert cache's device tier.
#include "engine/cache/slot_sizing.h"

#include <algorithm>

#include "absl/strings/str_format.h"

namespace moed::cache {

absl::StatusOr<int> DeviceSlotCount(const SlotSizingInput& in) {
  if (in.slots < 0 || in.bytes < 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("expert cache: slots (%d) and bytes (%d) must be ≥ 0", in.slots, in.bytes));
  }
  if ((in.slots == 0 && in.bytes == 0) || in.routed_experts <= 0) return 0;
  if (in.expert_bytes <= 0) {
    return absl::InvalidArgumentError(absl::StrFormat("expert cache: expert_bytes must be > 0, got %d", in.expert_bytes));
  }
  int64_t slots = in.slots;
  if (slots == 0) {
    if (in.bytes < in.expert_bytes) {
      return absl::InvalidArgumentError(
          absl::StrFormat("--expert-cache-bytes %d holds no whole expert (one expert is %d bytes)", in.bytes,
                          in.expert_bytes));
    }
    slots = in.bytes / in.expert_bytes;
  }
  slots = std::min<int64_t>(slots, in.routed_experts);
  if (in.free_device_bytes >= 0 && slots * in.expert_bytes > in.free_device_bytes) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--expert-cache-%s asks for %d slots = %d bytes; only %d bytes of device memory are free after the dense "
        "weights and the KV cache",
        in.slots > 0 ? "slots" : "bytes", slots, slots * in.expert_bytes, in.free_device_bytes));
  }
  return static_cast<int>(slots);
}

}  // namespace moed::cache
