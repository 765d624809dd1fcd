// EngineCore::Create and AddRequest reject bad configs and requests with errors naming the field and limit.
#include <string>

#include "engine/runtime/engine_core.h"
#include "gtest/gtest.h"
#include "tests/unit/runtime/engine_test_util.h"

namespace moed {
namespace {

using testing::Greedy;
using testing::Load;
using testing::MakeBackend;
using testing::MakeEngine;

constexpr char kFortune[] = "fortune-moe";

void ExpectError(const absl::Status& s, absl::StatusCode code, const std::string& fragment) {
  EXPECT_EQ(s.code(), code) << s;
  EXPECT_NE(std::string(s.message()).find(fragment), std::string::npos) << "'" << fragment << "' not in: " << s;
}

TEST(EngineCoreValidationTest, CreateResolvesDefaults) {
  auto engine = MakeEngine(kFortune, {.max_running_seqs = 4});
  ASSERT_NE(engine, nullptr);
  EXPECT_EQ(engine->config().max_model_len, 1024);
  EXPECT_EQ(engine->stats().kv_blocks_total, 4 * 1024 / 16);
  EXPECT_EQ(engine->config().kv_cache_bytes, engine->stats().kv_blocks_total * MakeBackend(kFortune)->KvBytesPerBlock(16));
  EXPECT_EQ(engine->backend_name(), "cpu");
  EXPECT_EQ(engine->spec().num_experts, 8);
  EXPECT_EQ(engine->stats().routed.size(), 4u * 8u);
  EXPECT_FALSE(engine->HasUnfinished());
}

TEST(EngineCoreValidationTest, CreateRejectsACacheThatCannotHoldOneSequence) {
  const int64_t per_block = MakeBackend(kFortune)->KvBytesPerBlock(16);
  absl::StatusOr<std::unique_ptr<EngineCore>> e = EngineCore::Create(
      MakeBackend(kFortune), Load(kFortune).tokenizer,
      {.max_model_len = 256, .kv_block_size = 16, .kv_cache_bytes = 10 * per_block});
  ExpectError(e.status(), absl::StatusCode::kInvalidArgument, "max_model_len=256 tokens needs 16 blocks");
  ExpectError(e.status(), absl::StatusCode::kInvalidArgument, "kv_cache_bytes=" + std::to_string(10 * per_block));
}

TEST(EngineCoreValidationTest, CreateRejectsBadConfig) {
  auto create = [](EngineConfig c) {
    return EngineCore::Create(MakeBackend(kFortune), Load(kFortune).tokenizer, c).status();
  };
  ExpectError(create({.max_model_len = 5000}), absl::StatusCode::kInvalidArgument, "max_position_embeddings (1024)");
  ExpectError(create({.max_batch_tokens = 0}), absl::StatusCode::kInvalidArgument, "max_batch_tokens");
  ExpectError(create({.kv_block_size = -1}), absl::StatusCode::kInvalidArgument, "kv_block_size");
  ExpectError(EngineCore::Create(nullptr, Load(kFortune).tokenizer, {}).status(), absl::StatusCode::kInvalidArgument,
              "backend");
}

TEST(EngineCoreValidationTest, AddRequestRejectsBadRequests) {
  auto engine = MakeEngine(kFortune, {.max_running_seqs = 4, .max_queue = 2, .max_model_len = 1024});
  ASSERT_NE(engine, nullptr);
  ExpectError(engine->AddRequest(Greedy("e", {}, 4)), absl::StatusCode::kInvalidArgument, "prompt is empty");
  ExpectError(engine->AddRequest(Greedy("v", {1, 4096}, 4)), absl::StatusCode::kInvalidArgument,
              "prompt_ids[1] = 4096 is outside the vocabulary of 4096 tokens");
  ExpectError(engine->AddRequest(Greedy("n", {1, -3}, 4)), absl::StatusCode::kInvalidArgument, "prompt_ids[1] = -3");
  ExpectError(engine->AddRequest(Greedy("z", {1}, 0)), absl::StatusCode::kInvalidArgument, "max_tokens (0)");
  ExpectError(engine->AddRequest(Greedy("l", std::vector<int32_t>(1000, 5), 100)), absl::StatusCode::kInvalidArgument,
              "prompt (1000 tokens) + max_tokens (100) exceeds the context of 1024 tokens");
  EngineRequest hot = Greedy("t", {1}, 4);
  hot.sampling.top_p = 0.0f;
  ExpectError(engine->AddRequest(hot), absl::StatusCode::kInvalidArgument, "top_p");
  EXPECT_FALSE(engine->HasUnfinished());

  ASSERT_TRUE(engine->AddRequest(Greedy("a", {1, 2, 3}, 4)).ok());
  ExpectError(engine->AddRequest(Greedy("a", {1}, 4)), absl::StatusCode::kAlreadyExists, "request a");
  ASSERT_TRUE(engine->AddRequest(Greedy("b", {1, 2, 3}, 4)).ok());
  ExpectError(engine->AddRequest(Greedy("c", {1}, 4)), absl::StatusCode::kResourceExhausted, "max_queue");
  EXPECT_EQ(engine->stats().waiting, 2);
  engine->Step();  // both admitted: the queue has room again
  EXPECT_TRUE(engine->AddRequest(Greedy("c", {1}, 4)).ok());
  EXPECT_EQ(FinishReasonName(FinishReason::kStop), "stop");
  EXPECT_EQ(FinishReasonName(FinishReason::kDeadline), "deadline");
}

}  // namespace
}  // namespace moed
