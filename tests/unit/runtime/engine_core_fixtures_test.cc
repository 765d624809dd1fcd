// EngineCore on the tiny golden fixtures: all cases batched together (chunked prefill, staggered)
// reproduce transformers' greedy tokens up to the first near-tie.
#include "engine/runtime/engine_core.h"

#include "gtest/gtest.h"
#include "tests/unit/runtime/engine_test_util.h"

namespace moed {
namespace {

using testing::Collected;

class EngineCoreFixtureTest : public ::testing::TestWithParam<std::string> {};

TEST_P(EngineCoreFixtureTest, BatchedGreedyMatchesGolden) {
  const std::string name = GetParam();
  nlohmann::json golden = testing::LoadGolden(name);
  auto engine = testing::MakeEngine(name, {.max_running_seqs = 8, .max_batch_tokens = 16});
  ASSERT_NE(engine, nullptr);
  std::vector<EngineRequest> requests;
  std::vector<std::vector<int32_t>> expected;
  std::vector<int> at_step;
  for (const nlohmann::json& c : golden["cases"]) {
    std::vector<int32_t> tokens;
    for (const nlohmann::json& g : c["greedy"]) {
      if (g["margin"].get<double>() < 1e-3) break;  // a near-tie may legitimately flip
      tokens.push_back(g["token"].get<int32_t>());
    }
    if (tokens.empty()) continue;
    requests.push_back(testing::Greedy("c" + std::to_string(requests.size()),
                                       c["input_ids"].get<std::vector<int32_t>>(), static_cast<int>(tokens.size())));
    expected.push_back(tokens);
    at_step.push_back(static_cast<int>(requests.size()) - 1);
  }
  ASSERT_FALSE(requests.empty());
  std::map<std::string, Collected> got = testing::RunAll(*engine, requests, at_step);
  for (size_t i = 0; i < requests.size(); ++i) {
    EXPECT_EQ(got[requests[i].request_id].tokens, expected[i]) << name << " " << requests[i].request_id;
  }
  EXPECT_EQ(engine->stats().kv_blocks_used, 0);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, EngineCoreFixtureTest,
                         ::testing::Values("tiny-mixtral", "tiny-qwen2-moe", "tiny-qwen3-moe", "tiny-olmoe",
                                           "tiny-qwen3-moe-long", "tiny-mixtral-swa", "tiny-mixtral-hd24",
                                           "tiny-qwen2-moe-dense"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string n = info.param;
                           for (char& ch : n) if (ch == '-') ch = '_';
                           return n;
                         });

}  // namespace
}  // namespace moed
