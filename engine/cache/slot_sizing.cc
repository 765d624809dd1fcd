// Slot sizing arithmetic for the expert cache's device tier.
#include "engine/cache/slot_sizing.h"

#include <algorithm>
#include <cmath>

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
        "%s asks for %d slots = %d bytes; only %d bytes of device memory are free after the dense "
        "weights and the KV cache",
        in.slots > 0 ? "--expert-cache-slots (or --expert-cache-fraction)" : "--expert-cache-bytes", slots, slots * in.expert_bytes, in.free_device_bytes));
  }
  return static_cast<int>(slots);
}

double LargestFittingFraction(int64_t routed_bytes, int64_t room) {
  if (routed_bytes <= 0 || room <= 0) return 0.0;
  return std::floor(100.0 * std::min<double>(1.0, static_cast<double>(room) / routed_bytes)) / 100.0;
}

absl::Status RequireResidentExpertsFit(int64_t dense_bytes, int64_t routed_bytes, int64_t free_device_bytes) {
  if (dense_bytes + routed_bytes <= free_device_bytes) return absl::OkStatus();
  constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
  if (routed_bytes <= 0 || dense_bytes >= free_device_bytes) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "the model's dense weights need %.2f GiB of device memory; %.2f GiB are free (routed experts %.2f GiB "
        "besides): the model cannot run on this device",
        dense_bytes / kGiB, free_device_bytes / kGiB, routed_bytes / kGiB));
  }
  const double fraction = LargestFittingFraction(routed_bytes, free_device_bytes - dense_bytes);
  return absl::ResourceExhaustedError(absl::StrFormat(
      "the model's routed experts (%.2f GiB bf16) do not fit beside its dense weights (%.2f GiB) in the %.2f GiB of "
      "free device memory. Keep part of them in host memory with the hot-expert cache: --expert-cache-fraction "
      "(at most %.2f here; less leaves room for the KV cache) or --expert-cache-bytes",
      routed_bytes / kGiB, dense_bytes / kGiB, free_device_bytes / kGiB, fraction));
}

}  // namespace moed::cache
