// Generate on fortune-moe: EOS stops generation (returned last, without text) unless ignored, the streaming callback
// sees every token and can stop early, max_tokens 0 only scores, and sampling is reproducible by seed.
#include "engine/runtime/generate.h"

#include <string>
#include <vector>

#include "engine/backend/backend.h"
#include "engine/model/model.h"
#include "gtest/gtest.h"

namespace moed {
namespace {

const std::vector<int32_t> kPrompt = {1, 1655, 2176, 261, 891};  // "Never trust a computer"
const std::vector<int32_t> kGreedy = {4031, 13, 12, 12, 296, 362, 4031, 402};  // its golden greedy start

std::unique_ptr<Backend> FortuneBackend() {
  auto model = LoadModel(std::string(MOED_SOURCE_DIR) + "/models/fortune-moe");
  EXPECT_TRUE(model.ok()) << model.status();
  if (!model.ok()) return nullptr;
  auto b = CreateBackend("cpu", *model, {});
  EXPECT_TRUE(b.ok()) << b.status();
  return b.ok() ? std::move(*b) : nullptr;
}

GenerateOptions Greedy(int max_tokens) {
  GenerateOptions o;
  o.max_tokens = max_tokens;
  o.sampling.temperature = 0;
  return o;
}

TEST(GenerateTest, StopsAtEosUnlessIgnored) {
  auto b = FortuneBackend();
  ASSERT_NE(b, nullptr);
  GenerateOptions o = Greedy(8);
  o.eos_ids = {12};  // pretend "\t" ends the sequence: greedy emits it third
  auto r = Generate(*b, kPrompt, o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->stopped_at_eos);
  EXPECT_EQ(r->output_ids, std::vector<int32_t>(kGreedy.begin(), kGreedy.begin() + 3));
  EXPECT_EQ(r->text_ids(), std::vector<int32_t>(kGreedy.begin(), kGreedy.begin() + 2));
  EXPECT_EQ(r->logprobs.size(), 3u);
  o.ignore_eos = true;
  r = Generate(*b, kPrompt, o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->stopped_at_eos);
  EXPECT_EQ(r->output_ids, kGreedy);
}

TEST(GenerateTest, CallbackStreamsAndStopsEarly) {
  auto b = FortuneBackend();
  ASSERT_NE(b, nullptr);
  GenerateOptions o = Greedy(8);
  std::vector<int32_t> seen;
  o.on_token = [&](int32_t t) {
    seen.push_back(t);
    return seen.size() < 5;
  };
  auto r = Generate(*b, kPrompt, o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(seen, std::vector<int32_t>(kGreedy.begin(), kGreedy.begin() + 5));
  EXPECT_EQ(r->output_ids, seen);
}

TEST(GenerateTest, MaxTokensZeroOnlyScores) {
  auto b = FortuneBackend();
  ASSERT_NE(b, nullptr);
  GenerateOptions o = Greedy(0);
  o.want_prompt_logits = true;
  o.want_routing = true;
  auto r = Generate(*b, kPrompt, o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->output_ids.empty());
  EXPECT_EQ(r->prompt_logits.size(), 4096u);
  int64_t routed = 0;
  for (int64_t v : r->routing) routed += v;
  EXPECT_EQ(routed, 5 * 4 * 2);  // tokens × layers × top-k
}

TEST(GenerateTest, SamplingIsReproducibleBySeed) {
  auto b = FortuneBackend();
  ASSERT_NE(b, nullptr);
  GenerateOptions o;
  o.max_tokens = 16;
  o.ignore_eos = true;
  o.sampling.temperature = 1.0f;
  o.sampling.seed = 11;
  auto a = Generate(*b, kPrompt, o);
  o.prefill_chunk = 2;  // a different prefill split must not change the draws
  auto c = Generate(*b, kPrompt, o);
  o.sampling.seed = 12;
  auto d = Generate(*b, kPrompt, o);
  ASSERT_TRUE(a.ok() && c.ok() && d.ok());
  EXPECT_EQ(a->output_ids, c->output_ids);
  EXPECT_NE(a->output_ids, d->output_ids);
}

TEST(GenerateTest, RejectsBadInput) {
  auto b = FortuneBackend();
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(Generate(*b, {}, Greedy(4)).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Generate(*b, {1, 5000}, Greedy(4)).status().code(), absl::StatusCode::kInvalidArgument);
  GenerateOptions o = Greedy(4);
  o.prefill_chunk = 0;
  EXPECT_EQ(Generate(*b, kPrompt, o).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace moed
