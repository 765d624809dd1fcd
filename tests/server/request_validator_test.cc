// Every invalid GenerateRequest gets INVALID_ARGUMENT naming the field and the limit; valid ones map
// onto EngineRequest with defaults applied. Uses fortune-moe's real tokenizer.
#include "server/request_validator.h"

#include <cmath>
#include <limits>
#include <memory>
#include <string>

#include <gtest/gtest.h>

namespace moed::server {
namespace {

class RequestValidatorTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto t = LoadTokenizer(std::string(MOED_SOURCE_DIR) + "/models/fortune-moe");
    ASSERT_TRUE(t.ok()) << t.status();
    tokenizer_ = std::move(*t).release();
  }
  static void TearDownTestSuite() {
    delete tokenizer_;
    tokenizer_ = nullptr;
  }

  RequestValidatorTest() {
    limits_.vocab_size = 4096;
    limits_.context_length = 64;
    limits_.max_tokens_limit = 48;
    limits_.default_max_tokens = 16;
    limits_.max_stop_strings = 2;
    limits_.max_stop_length = 8;
    limits_.max_logprobs = 5;
    limits_.max_prompt_bytes = 100;
  }

  absl::StatusOr<EngineRequest> Validate(const v1::GenerateRequest& r) {
    return ValidateGenerateRequest(r, limits_, *tokenizer_, /*default_seed=*/77);
  }

  // Asserts INVALID_ARGUMENT and that the message contains every one of `parts`.
  void ExpectInvalid(const v1::GenerateRequest& r, std::initializer_list<std::string> parts) {
    absl::StatusOr<EngineRequest> out = Validate(r);
    ASSERT_FALSE(out.ok()) << r.DebugString();
    EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
    for (const std::string& p : parts) {
      EXPECT_NE(out.status().message().find(p), std::string::npos)
          << "message '" << out.status().message() << "' lacks '" << p << "'";
    }
  }

  static v1::GenerateRequest Prompt(const std::string& text) {
    v1::GenerateRequest r;
    r.set_prompt(text);
    return r;
  }

  static Tokenizer* tokenizer_;
  RequestLimits limits_;
};
Tokenizer* RequestValidatorTest::tokenizer_ = nullptr;

TEST_F(RequestValidatorTest, ValidRequestGetsDefaults) {
  v1::GenerateRequest r = Prompt("Never trust a computer");
  r.set_priority(3);
  r.set_include_routing(true);
  absl::StatusOr<EngineRequest> out = Validate(r);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->prompt_ids, *tokenizer_->Encode("Never trust a computer"));
  EXPECT_EQ(out->max_tokens, 16);
  EXPECT_FLOAT_EQ(out->sampling.temperature, 1.0f);
  EXPECT_FLOAT_EQ(out->sampling.top_p, 1.0f);
  EXPECT_EQ(out->sampling.top_k, 0);
  EXPECT_EQ(out->sampling.seed, 77u);
  EXPECT_EQ(out->priority, 3);
  EXPECT_TRUE(out->include_routing);
}

TEST_F(RequestValidatorTest, ExplicitSamplingIsCopied) {
  v1::GenerateRequest r;
  r.add_prompt_ids(1);
  r.add_prompt_ids(4095);
  auto* s = r.mutable_sampling();
  s->set_temperature(0.0f);
  s->set_top_p(0.5f);
  s->set_top_k(4);
  s->set_seed(9);
  s->set_max_tokens(48);
  s->add_stop("\n");
  s->set_ignore_eos(true);
  s->set_logprobs(5);
  absl::StatusOr<EngineRequest> out = Validate(r);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->prompt_ids, (std::vector<int32_t>{1, 4095}));
  EXPECT_FLOAT_EQ(out->sampling.temperature, 0.0f);
  EXPECT_FLOAT_EQ(out->sampling.top_p, 0.5f);
  EXPECT_EQ(out->sampling.top_k, 4);
  EXPECT_EQ(out->sampling.seed, 9u);
  EXPECT_EQ(out->sampling.logprobs, 5);
  EXPECT_EQ(out->max_tokens, 48);
  EXPECT_EQ(out->stop, (std::vector<std::string>{"\n"}));
  EXPECT_TRUE(out->ignore_eos);
}

TEST_F(RequestValidatorTest, PromptPresence) {
  ExpectInvalid(v1::GenerateRequest(), {"prompt is empty", "exactly one of prompt / prompt_ids"});
  v1::GenerateRequest both = Prompt("hi");
  both.add_prompt_ids(5);
  ExpectInvalid(both, {"exactly one of prompt / prompt_ids", "not both"});
}

TEST_F(RequestValidatorTest, IdsOutsideTheVocabulary) {
  v1::GenerateRequest r;
  r.add_prompt_ids(1);
  r.add_prompt_ids(4096);
  ExpectInvalid(r, {"prompt_ids[1] = 4096", "[0, 4096)"});
  r.set_prompt_ids(1, -3);
  ExpectInvalid(r, {"prompt_ids[1] = -3"});
}

TEST_F(RequestValidatorTest, MaxTokens) {
  v1::GenerateRequest r = Prompt("hello");
  r.mutable_sampling()->set_max_tokens(0);
  ExpectInvalid(r, {"sampling.max_tokens", "[1, 48]", "got 0"});
  r.mutable_sampling()->set_max_tokens(-5);
  ExpectInvalid(r, {"sampling.max_tokens", "got -5"});
  r.mutable_sampling()->set_max_tokens(49);
  ExpectInvalid(r, {"sampling.max_tokens", "[1, 48]", "got 49"});
}

TEST_F(RequestValidatorTest, PromptPlusMaxTokensOverContext) {
  v1::GenerateRequest r;
  for (int i = 0; i < 40; ++i) r.add_prompt_ids(100);
  r.mutable_sampling()->set_max_tokens(30);
  ExpectInvalid(r, {"prompt (40 tokens)", "sampling.max_tokens (30)", "context of 64"});
  // Unset max_tokens is clamped to what the context leaves.
  r.mutable_sampling()->clear_max_tokens();
  for (int i = 0; i < 10; ++i) r.add_prompt_ids(100);  // 50 tokens: 14 left
  absl::StatusOr<EngineRequest> out = Validate(r);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->max_tokens, 14);
  for (int i = 0; i < 14; ++i) r.add_prompt_ids(100);  // 64 tokens: nothing left
  ExpectInvalid(r, {"64 tokens", "no room", "context of 64"});
  r.add_prompt_ids(100);
  ExpectInvalid(r, {"prompt_ids has 65 tokens", "context of 64"});
}

TEST_F(RequestValidatorTest, Temperature) {
  v1::GenerateRequest r = Prompt("hello");
  r.mutable_sampling()->set_temperature(-0.1f);
  ExpectInvalid(r, {"sampling.temperature", ">= 0"});
  r.mutable_sampling()->set_temperature(std::nanf(""));
  ExpectInvalid(r, {"sampling.temperature", ">= 0", "nan"});
  r.mutable_sampling()->set_temperature(std::numeric_limits<float>::infinity());
  ExpectInvalid(r, {"sampling.temperature", "finite"});
}

TEST_F(RequestValidatorTest, TopP) {
  v1::GenerateRequest r = Prompt("hello");
  for (float p : {0.0f, -0.5f, 1.01f, std::nanf("")}) {
    r.mutable_sampling()->set_top_p(p);
    ExpectInvalid(r, {"sampling.top_p", "(0, 1]"});
  }
  r.mutable_sampling()->set_top_p(1.0f);
  EXPECT_TRUE(Validate(r).ok());
}

TEST_F(RequestValidatorTest, TopKAndLogprobs) {
  v1::GenerateRequest r = Prompt("hello");
  r.mutable_sampling()->set_top_k(-1);
  ExpectInvalid(r, {"sampling.top_k", ">= 0", "got -1"});
  r.mutable_sampling()->set_top_k(0);
  r.mutable_sampling()->set_logprobs(6);
  ExpectInvalid(r, {"sampling.logprobs", "[0, 5]", "got 6"});
  r.mutable_sampling()->set_logprobs(-1);
  ExpectInvalid(r, {"sampling.logprobs", "[0, 5]", "got -1"});
}

TEST_F(RequestValidatorTest, StopStrings) {
  v1::GenerateRequest r = Prompt("hello");
  r.mutable_sampling()->add_stop("a");
  r.mutable_sampling()->add_stop("b");
  r.mutable_sampling()->add_stop("c");
  ExpectInvalid(r, {"sampling.stop has 3 strings", "limit of 2"});
  r.mutable_sampling()->clear_stop();
  r.mutable_sampling()->add_stop("ok");
  r.mutable_sampling()->add_stop("123456789");
  ExpectInvalid(r, {"sampling.stop[1] is 9 bytes", "limit of 8 bytes"});
  r.mutable_sampling()->set_stop(1, "");
  ExpectInvalid(r, {"sampling.stop[1] is empty"});
}

TEST_F(RequestValidatorTest, PromptBytes) {
  ExpectInvalid(Prompt(std::string(101, 'a')), {"prompt is 101 bytes", "limit of 100 bytes"});
  EXPECT_TRUE(Validate(Prompt(std::string(20, 'a'))).ok());
}

}  // namespace
}  // namespace moed::server
