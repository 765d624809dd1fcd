// DeviceSlotCount: slots from --expert-cache-slots/-bytes, clamped to the model, refused when they exceed free HBM.
#include "engine/cache/slot_sizing.h"

#include "gtest/gtest.h"

namespace moed::cache {
namespace {

// Mixtral-8x7B: 32 layers × 8 experts, one expert = 3 × 4096 × 14336 bf16.
constexpr int64_t kMixtralExpert = 3LL * 4096 * 14336 * 2;

TEST(SlotSizingTest, OffWhenNothingIsAsked) {
  EXPECT_EQ(*DeviceSlotCount({0, 0, 256, kMixtralExpert, -1}), 0);
  EXPECT_EQ(*DeviceSlotCount({4, 0, 0, kMixtralExpert, -1}), 0) << "a dense model has nothing to cache";
}

TEST(SlotSizingTest, BytesRoundDownToWholeExperts) {
  EXPECT_EQ(*DeviceSlotCount({0, 60LL << 30, 256, kMixtralExpert, 70LL << 30}), (60LL << 30) / kMixtralExpert);
  EXPECT_EQ((60LL << 30) / kMixtralExpert, 182);  // 60 GiB holds 182 of Mixtral's 256 experts
  EXPECT_EQ(*DeviceSlotCount({0, kMixtralExpert * 2 - 1, 256, kMixtralExpert, -1}), 1);
}

TEST(SlotSizingTest, ClampedToTheRoutedExperts) {
  EXPECT_EQ(*DeviceSlotCount({1000, 0, 256, kMixtralExpert, -1}), 256);
  EXPECT_EQ(*DeviceSlotCount({0, 1LL << 50, 256, kMixtralExpert, -1}), 256);
}

TEST(SlotSizingTest, RefusedWhenTooSmallOrTooLarge) {
  auto tiny = DeviceSlotCount({0, 1000, 256, kMixtralExpert, -1});
  EXPECT_EQ(tiny.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(tiny.status().message().find("--expert-cache-bytes"), std::string::npos);
  auto big = DeviceSlotCount({200, 0, 256, kMixtralExpert, 100 * kMixtralExpert});
  EXPECT_EQ(big.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(big.status().message().find("--expert-cache-slots (or --expert-cache-fraction) asks for 200 slots"), std::string::npos);
  EXPECT_EQ(*DeviceSlotCount({100, 0, 256, kMixtralExpert, 100 * kMixtralExpert}), 100) << "exactly fits";
  EXPECT_EQ(DeviceSlotCount({-1, 0, 256, kMixtralExpert, -1}).status().code(), absl::StatusCode::kInvalidArgument);
}

// Without a cache flag, a model whose routed experts do not fit is refused at start-up with the flag to set.
TEST(SlotSizingTest, ResidentModelsThatDoNotFitAreRefusedNamingTheFlag) {
  constexpr int64_t kGiB = 1LL << 30;
  const int64_t routed = 256 * kMixtralExpert;  // 84 GiB
  EXPECT_TRUE(RequireResidentExpertsFit(3 * kGiB, routed, 100 * kGiB).ok());
  const absl::Status h100 = RequireResidentExpertsFit(3 * kGiB, routed, 79 * kGiB);
  EXPECT_EQ(h100.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(h100.message().find("--expert-cache-fraction (at most 0.90 here"), std::string::npos) << h100;
  EXPECT_NE(h100.message().find("--expert-cache-bytes"), std::string::npos) << h100;
  const absl::Status no_room = RequireResidentExpertsFit(80 * kGiB, routed, 79 * kGiB);
  EXPECT_EQ(no_room.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(no_room.message().find("cannot run on this device"), std::string::npos) << no_room;
}

TEST(SlotSizingTest, LargestFittingFractionRoundsDown) {
  EXPECT_DOUBLE_EQ(LargestFittingFraction(1000, 999), 0.99);
  EXPECT_DOUBLE_EQ(LargestFittingFraction(1000, 5000), 1.0);
  EXPECT_DOUBLE_EQ(LargestFittingFraction(1000, 9), 0.0);
  EXPECT_DOUBLE_EQ(LargestFittingFraction(1000, 0), 0.0);
}

}  // namespace
}  // namespace moed::cache
