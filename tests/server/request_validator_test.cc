// The one validator: every invalid CoreRequest gets INVALID_ARGUMENT naming the field and the limit (checked
// before tokenizing); valid ones map onto EngineRequest with defaults applied. Uses fortune-moe's tokenizer.
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

  // CheckRequest, then (for text) the real tokenizer, then ToEngineRequest — what EngineService does.
  absl::StatusOr<EngineRequest> Validate(const CoreRequest& r, Caller caller = Caller{.admin = true}) {
    if (absl::Status s = CheckRequest(r, limits_, caller); !s.ok()) return s;
    std::vector<int32_t> ids = r.prompt_ids;
    if (!r.prompt.empty()) {
      absl::StatusOr<std::vector<int32_t>> encoded = tokenizer_->Encode(r.prompt);
      if (!encoded.ok()) return encoded.status();
      ids = *encoded;
    }
    return ToEngineRequest(r, ids, limits_, /*default_seed=*/77);
  }

  // Asserts INVALID_ARGUMENT and that the message contains every one of `parts`.
  void ExpectInvalid(const CoreRequest& r, std::initializer_list<std::string> parts) {
    absl::StatusOr<EngineRequest> out = Validate(r);
    ASSERT_FALSE(out.ok());
    EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
    for (const std::string& p : parts) {
      EXPECT_NE(out.status().message().find(p), std::string::npos)
          << "message '" << out.status().message() << "' lacks '" << p << "'";
    }
  }

  static CoreRequest Prompt(const std::string& text) {
    CoreRequest r;
    r.prompt = text;
    return r;
  }

  static Tokenizer* tokenizer_;
  RequestLimits limits_;
};
Tokenizer* RequestValidatorTest::tokenizer_ = nullptr;

TEST_F(RequestValidatorTest, ValidRequestGetsDefaults) {
  CoreRequest r = Prompt("Never trust a computer");
  r.priority = 3;
  r.include_routing = true;
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
  CoreRequest r;
  r.prompt_ids = {1, 4095};
  r.sampling.temperature = 0.0f;
  r.sampling.top_p = 0.5f;
  r.sampling.top_k = 4;
  r.sampling.seed = 9;
  r.sampling.max_tokens = 48;
  r.sampling.stop = {"\n"};
  r.sampling.ignore_eos = true;
  r.sampling.logprobs = 5;
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
  ExpectInvalid(CoreRequest(), {"prompt is empty", "exactly one of prompt / prompt_ids"});
  CoreRequest both = Prompt("hi");
  both.prompt_ids = {5};
  ExpectInvalid(both, {"exactly one of prompt / prompt_ids", "not both"});
}

TEST_F(RequestValidatorTest, IdsOutsideTheVocabulary) {
  CoreRequest r;
  r.prompt_ids = {1, 4096};
  ExpectInvalid(r, {"prompt_ids[1] = 4096", "[0, 4096)"});
  r.prompt_ids[1] = -3;
  ExpectInvalid(r, {"prompt_ids[1] = -3"});
}

TEST_F(RequestValidatorTest, MaxTokens) {
  CoreRequest r = Prompt("hello");
  r.sampling.max_tokens = 0;
  ExpectInvalid(r, {"sampling.max_tokens", "[1, 48]", "got 0"});
  r.sampling.max_tokens = -5;
  ExpectInvalid(r, {"sampling.max_tokens", "got -5"});
  r.sampling.max_tokens = 49;
  ExpectInvalid(r, {"sampling.max_tokens", "[1, 48]", "got 49"});
}

TEST_F(RequestValidatorTest, PromptPlusMaxTokensOverContext) {
  CoreRequest r;
  r.prompt_ids.assign(40, 100);
  r.sampling.max_tokens = 30;
  ExpectInvalid(r, {"prompt (40 tokens)", "sampling.max_tokens (30)", "context of 64"});
  // Unset max_tokens is clamped to what the context leaves.
  r.sampling.max_tokens.reset();
  r.prompt_ids.assign(50, 100);  // 14 left
  absl::StatusOr<EngineRequest> out = Validate(r);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->max_tokens, 14);
  r.prompt_ids.assign(64, 100);  // nothing left
  ExpectInvalid(r, {"64 tokens", "no room", "context of 64"});
  r.prompt_ids.assign(65, 100);
  ExpectInvalid(r, {"prompt_ids has 65 tokens", "context of 64"});
}

TEST_F(RequestValidatorTest, Temperature) {
  CoreRequest r = Prompt("hello");
  r.sampling.temperature = -0.1f;
  ExpectInvalid(r, {"sampling.temperature", ">= 0"});
  r.sampling.temperature = std::nanf("");
  ExpectInvalid(r, {"sampling.temperature", ">= 0", "nan"});
  r.sampling.temperature = std::numeric_limits<float>::infinity();
  ExpectInvalid(r, {"sampling.temperature", "finite"});
}

TEST_F(RequestValidatorTest, TopP) {
  CoreRequest r = Prompt("hello");
  for (float p : {0.0f, -0.5f, 1.01f, std::nanf("")}) {
    r.sampling.top_p = p;
    ExpectInvalid(r, {"sampling.top_p", "(0, 1]"});
  }
  r.sampling.top_p = 1.0f;
  EXPECT_TRUE(Validate(r).ok());
}

TEST_F(RequestValidatorTest, TopKAndLogprobs) {
  CoreRequest r = Prompt("hello");
  r.sampling.top_k = -1;
  ExpectInvalid(r, {"sampling.top_k", ">= 0", "got -1"});
  r.sampling.top_k = 0;
  r.sampling.logprobs = 6;
  ExpectInvalid(r, {"sampling.logprobs", "[0, 5]", "got 6"});
  r.sampling.logprobs = -1;
  ExpectInvalid(r, {"sampling.logprobs", "got -1"});
}

TEST_F(RequestValidatorTest, StopStrings) {
  CoreRequest r = Prompt("hello");
  r.sampling.stop = {"a", "b", "c"};
  ExpectInvalid(r, {"sampling.stop has 3 strings", "limit of 2"});
  r.sampling.stop = {"ok", "123456789"};
  ExpectInvalid(r, {"sampling.stop[1] is 9 bytes", "limit of 8 bytes"});
  r.sampling.stop[1] = "";
  ExpectInvalid(r, {"sampling.stop[1] is empty"});
}

TEST_F(RequestValidatorTest, PromptBytes) {
  ExpectInvalid(Prompt(std::string(101, 'a')), {"prompt is 101 bytes", "limit of 100 bytes"});
  EXPECT_TRUE(Validate(Prompt(std::string(20, 'a'))).ok());
}

TEST_F(RequestValidatorTest, RequestIdOverTheLimit) {
  CoreRequest r = Prompt("hello");
  r.client_id = std::string(kMaxRequestIdBytes, 'x');
  EXPECT_TRUE(Validate(r).ok());
  r.client_id.push_back('x');
  ExpectInvalid(r, {"request_id is 257 bytes", "limit of 256 bytes"});
}

TEST_F(RequestValidatorTest, NegativePriorityNeedsAnAdminCaller) {
  CoreRequest r = Prompt("hello");
  r.priority = -1;
  EXPECT_TRUE(Validate(r, Caller{.admin = true}).ok());
  const absl::StatusOr<EngineRequest> out = Validate(r, Caller{.admin = false});
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(out.status().message().find("admin"), std::string::npos) << out.status();
  r.priority = 0;
  EXPECT_TRUE(Validate(r, Caller{.admin = false}).ok());
}

// The byte cap is derived from the context: a prompt at the cap may still fit, one byte more cannot.
TEST_F(RequestValidatorTest, PromptByteCapFollowsTheContext) {
  int64_t longest = 0;
  for (int32_t id = 0; id < tokenizer_->vocab_size(); ++id) {
    longest = std::max<int64_t>(longest, static_cast<int64_t>(tokenizer_->TokenBytes(id).size()));
  }
  ASSERT_GT(longest, 0);
  EXPECT_EQ(PromptByteCap(1024, *tokenizer_, 0), 1024 * longest);
  EXPECT_EQ(PromptByteCap(1024, *tokenizer_, 4096), std::min<int64_t>(4096, 1024 * longest));
  EXPECT_EQ(PromptByteCap(2048, *tokenizer_, 0), 2 * PromptByteCap(1024, *tokenizer_, 0));
  // Sanity of the bound on real text: the tokens of any prompt never cover more bytes than the cap implies.
  const std::string text = "Never trust a computer you cannot throw out of a window.";
  const std::vector<int32_t> ids = *tokenizer_->Encode(text);
  EXPECT_LE(static_cast<int64_t>(text.size()), static_cast<int64_t>(ids.size()) * longest);
}

}  // namespace
}  // namespace moed::server
