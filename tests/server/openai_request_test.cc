// The OpenAI front's request parser and error JSON: fields read and typed, unknown ones refused by name, core
// validator messages translated to OpenAI field names.
#include <gtest/gtest.h>

#include "server/openai/openai_format.h"
#include "server/openai/openai_request.h"

namespace moed::server::openai {
namespace {

TEST(OpenAIRequest, ReadsCompletionFields) {
  absl::StatusOr<OpenAIRequest> r = ParseOpenAIRequest(
      ApiKind::kCompletions,
      R"({"model":"m","prompt":[1,2,3],"max_tokens":7,"temperature":0.5,"top_p":0.9,"seed":3,"stop":"x","n":2,
          "logprobs":2,"user":"u","stream":true,"stream_options":{"include_usage":true},"top_k":-1,
          "ignore_eos":true,"priority":-2,"moed":{"include_routing":true},"echo":null})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->model, "m");
  EXPECT_TRUE(r->prompt_is_ids);
  EXPECT_EQ(r->prompt_ids, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(r->sampling.max_tokens, 7);
  EXPECT_FLOAT_EQ(*r->sampling.temperature, 0.5f);
  EXPECT_EQ(*r->sampling.seed, 3u);
  EXPECT_EQ(r->sampling.stop, (std::vector<std::string>{"x"}));
  EXPECT_EQ(r->n, 2);
  EXPECT_TRUE(r->logprobs);
  EXPECT_EQ(r->sampling.logprobs, 2);
  EXPECT_TRUE(r->stream && r->include_usage && r->include_routing && r->sampling.ignore_eos);
  EXPECT_EQ(r->sampling.top_k, 0);
  EXPECT_EQ(r->priority, -2);
  EXPECT_FALSE(r->echo);  // null = the default
}

TEST(OpenAIRequest, ChatTextPartsAreJoinedAndKeyOrderKept) {
  absl::StatusOr<OpenAIRequest> r = ParseOpenAIRequest(
      ApiKind::kChat, R"({"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}],
                          "logprobs":true,"top_logprobs":3,"max_completion_tokens":4})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->messages[0]["content"], "ab");
  EXPECT_EQ(r->messages[0].begin().key(), "role");
  EXPECT_TRUE(r->logprobs);
  EXPECT_EQ(r->sampling.logprobs, 3);
  EXPECT_EQ(r->sampling.max_tokens, 4);
}

struct Refusal {
  ApiKind kind;
  const char* body;
  const char* param;
  const char* says;
};

TEST(OpenAIRequest, RefusalsNameTheField) {
  const Refusal cases[] = {
      {ApiKind::kCompletions, R"({"prompt":"x","frequency_penalty":0})", "frequency_penalty", "not a supported"},
      {ApiKind::kCompletions, R"({"prompt":"x","moed":{"trace":true}})", "moed.trace", "not a supported"},
      {ApiKind::kCompletions, R"({"prompt":"x","stream_options":{"x":1}})", "stream_options.x", "not a supported"},
      {ApiKind::kCompletions, R"({"prompt":["a","b"]})", "prompt", "one prompt per request"},
      {ApiKind::kCompletions, R"({"prompt":[1,-1]})", "prompt", "must be in [0, "},
      {ApiKind::kCompletions, R"({"max_tokens":3})", "prompt", "required"},
      {ApiKind::kCompletions, R"({"prompt":"x","n":17})", "n", "[1, 16]"},
      {ApiKind::kCompletions, R"({"prompt":"x","max_tokens":"5"})", "max_tokens", "integer"},
      {ApiKind::kCompletions, R"({"prompt":"x","temperature":"hot"})", "temperature", "number"},
      {ApiKind::kCompletions, R"({"prompt":"x","stop":[1]})", "stop", "stop[0] must be a string"},
      {ApiKind::kCompletions, R"({"prompt":"x","echo":true,"logprobs":1})", "echo", "not supported"},
      {ApiKind::kCompletions, R"({"prompt":"x","stream_options":{"include_usage":true}})", "stream_options",
       "stream: true"},
      {ApiKind::kCompletions, R"({"prompt":"x","messages":[]})", "messages", "not a supported"},
      {ApiKind::kChat, R"({"messages":[{"role":"user","content":"x"}],"echo":true})", "echo", "not a supported"},
      {ApiKind::kChat, R"({"messages":[{"content":"x"}]})", "messages", "messages[0].role"},
      {ApiKind::kChat, R"({"messages":[{"role":"user","content":[{"type":"image_url"}]}]})", "messages", "only text"},
      {ApiKind::kChat, R"({"messages":[{"role":"user","content":"x"}],"top_logprobs":2})", "top_logprobs",
       "logprobs: true"},
      {ApiKind::kChat, R"({"prompt":"x"})", "prompt", "not a supported"},
  };
  for (const Refusal& c : cases) {
    absl::StatusOr<OpenAIRequest> r = ParseOpenAIRequest(c.kind, c.body);
    ASSERT_FALSE(r.ok()) << c.body;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << c.body;
    EXPECT_EQ(ParamOf(r.status()), c.param) << c.body << ": " << r.status();
    EXPECT_NE(r.status().message().find(c.says), absl::string_view::npos) << c.body << ": " << r.status();
  }
  EXPECT_FALSE(ParseOpenAIRequest(ApiKind::kCompletions, "{oops").ok());
  EXPECT_EQ(ParamOf(ParseOpenAIRequest(ApiKind::kCompletions, "[1]").status()), "");
}

TEST(OpenAIFormat, ErrorJsonTranslatesCoreMessagesAndStatuses) {
  Json e = ErrorJson(absl::InvalidArgumentError("sampling.max_tokens must be in [1, 512], got 5000"));
  EXPECT_EQ(e["error"]["message"], "max_tokens must be in [1, 512], got 5000");
  EXPECT_EQ(e["error"]["param"], "max_tokens");
  EXPECT_EQ(e["error"]["type"], "invalid_request_error");
  e = ErrorJson(absl::InvalidArgumentError("prompt_ids[1] = 9999 is outside the vocabulary [0, 4096)"));
  EXPECT_EQ(e["error"]["param"], "prompt");
  EXPECT_EQ(HttpStatusOf(absl::UnauthenticatedError("x")), 401);
  EXPECT_EQ(HttpStatusOf(absl::PermissionDeniedError("x")), 403);
  EXPECT_EQ(HttpStatusOf(absl::NotFoundError("x")), 404);
  EXPECT_EQ(HttpStatusOf(absl::ResourceExhaustedError("x")), 429);
  EXPECT_EQ(HttpStatusOf(absl::UnavailableError("x")), 503);
  EXPECT_EQ(ErrorJson(absl::ResourceExhaustedError("full"))["error"]["param"], nullptr);
  EXPECT_EQ(ErrorJson(absl::UnauthenticatedError("no"))["error"]["code"], "invalid_api_key");
}

TEST(OpenAIFormat, DumpReplacesPartialUtf8) {
  EXPECT_EQ(Dump(Json("a\xE2\x82")), "\"a\xEF\xBF\xBD\"");
  EXPECT_EQ(SseEvent(Json{{"k", 1}}), "data: {\"k\":1}\n\n");
}

}  // namespace
}  // namespace moed::server::openai
