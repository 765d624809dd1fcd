// Jinja features one at a time (tests/fixtures/chat_templates/features.json, rendered by transformers' Jinja
// environment), the error statuses, and finding a model's template on disk.
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/chat/chat_template.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace moed::chat {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
const fs::path kDir = fs::path(MOED_SOURCE_DIR) / "tests" / "fixtures" / "chat_templates";

std::string Slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(ChatTemplateFeatures, MatchJinja) {
  auto doc = nlohmann::ordered_json::parse(Slurp(kDir / "features.json"));
  ASSERT_GE(doc["cases"].size(), 30u);
  for (const auto& c : doc["cases"]) {
    SCOPED_TRACE(c["name"].get<std::string>());
    ChatTemplateOptions opt;
    opt.extra = c["vars"];
    auto out = RenderChatTemplate(c["template"].get<std::string>(), nlohmann::ordered_json::array(), opt);
    if (!c.contains("error")) {
      ASSERT_TRUE(out.ok()) << out.status();
      EXPECT_EQ(*out, c["expected"].get<std::string>());
      continue;
    }
    ASSERT_FALSE(out.ok()) << "rendered " << *out;
    EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
    const std::string type = c["error_type"].get<std::string>(), msg = c["error"].get<std::string>();
    if (type == "TemplateError") {  // raise_exception: the template's message, unchanged
      EXPECT_EQ(out.status().message(), msg);
    } else if (type == "UndefinedError" || type == "TypeError") {  // Jinja's/Python's message after our position
      EXPECT_THAT(out.status().message(), HasSubstr(msg));
      EXPECT_THAT(out.status().message(), HasSubstr("chat template error at line 1, column"));
    } else {
      EXPECT_THAT(out.status().message(), HasSubstr("line 1, column"));
    }
  }
}

TEST(ChatTemplateErrors, SyntaxErrorNamesLineAndColumn) {
  auto t = ChatTemplate::Parse("ok\n{% for x in xs %}\n  {{ x + }}\n{% endfor %}");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(t.status().message(), HasSubstr("syntax error at line 3, column 10"));
  auto u = ChatTemplate::Parse("{% if x %}never closed");
  EXPECT_THAT(u.status().message(), HasSubstr("expected 'elif'"));
  auto v = ChatTemplate::Parse("{{ 'open }}");
  EXPECT_THAT(v.status().message(), HasSubstr("line 1, column 4: unterminated string"));
}

TEST(ChatTemplateErrors, MissingVariableNamesLineAndColumn) {
  auto out = RenderChatTemplate("{% for m in messages %}\n{{ m.content.text }}{{ m.nope.deeper }}{% endfor %}",
                                nlohmann::ordered_json::parse(R"([{"role": "user", "content": "hi"}])"), {});
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(out.status().message(), HasSubstr("line 2, column 30"));
  EXPECT_THAT(out.status().message(), HasSubstr("'dict object' has no attribute 'nope'"));
}

TEST(ChatTemplateErrors, BadArguments) {
  EXPECT_FALSE(RenderChatTemplate("x", nlohmann::ordered_json::object(), {}).ok());
  ChatTemplateOptions opt;
  opt.tools = "not a list";
  EXPECT_FALSE(RenderChatTemplate("x", nlohmann::ordered_json::array(), opt).ok());
}

class LoadChatTemplateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("moed_chat_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  void Write(const std::string& name, const std::string& text) { std::ofstream(dir_ / name) << text; }
  fs::path dir_;
};

TEST_F(LoadChatTemplateTest, StringTemplateAndAddedTokens) {
  Write("tokenizer_config.json",
        R"({"bos_token": {"__type": "AddedToken", "content": "<B>"}, "eos_token": "<E>",
            "chat_template": "{{ bos_token }}{% for m in messages %}{{ m.content }}{{ eos_token }}{% endfor %}"})");
  auto t = LoadChatTemplate(dir_.string());
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->bos_token, "<B>");
  EXPECT_EQ(t->eos_token, "<E>");
  ChatTemplateOptions opt;
  opt.bos_token = t->bos_token;
  opt.eos_token = t->eos_token;
  auto out = RenderChatTemplate(t->source, nlohmann::ordered_json::parse(R"([{"role":"user","content":"x"}])"), opt);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(*out, "<B>x<E>");
}

TEST_F(LoadChatTemplateTest, NamedTemplateList) {
  Write("tokenizer_config.json", R"({"chat_template": [{"name": "default", "template": "D"},
                                                       {"name": "tool_use", "template": "T"}]})");
  EXPECT_EQ(LoadChatTemplate(dir_.string())->source, "D");
  EXPECT_EQ(LoadChatTemplate(dir_.string(), "", "tool_use")->source, "T");
  EXPECT_EQ(LoadChatTemplate(dir_.string(), "", "rag").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(LoadChatTemplateTest, JinjaFileAndOverride) {
  Write("tokenizer_config.json", R"({"chat_template": "from config", "eos_token": "<E>"})");
  Write("chat_template.jinja", "from jinja file");
  EXPECT_EQ(LoadChatTemplate(dir_.string())->source, "from jinja file");
  Write("override.jinja", "from override");
  auto t = LoadChatTemplate(dir_.string(), (dir_ / "override.jinja").string());
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->source, "from override");
  EXPECT_EQ(t->eos_token, "<E>");
  EXPECT_EQ(LoadChatTemplate(dir_.string(), (dir_ / "absent.jinja").string()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(LoadChatTemplateTest, ModelWithoutTemplateIsNotFound) {
  // The served test checkpoints carry no template: a chat request on them must be refused clearly.
  auto t = LoadChatTemplate((fs::path(MOED_SOURCE_DIR) / "tests" / "fixtures" / "tiny-qwen3-moe").string());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(t.status().message(), HasSubstr("--chat-template FILE"));
  // With the override, the same checkpoint renders Qwen3's real template.
  auto q = LoadChatTemplate((fs::path(MOED_SOURCE_DIR) / "tests" / "fixtures" / "tiny-qwen3-moe").string(),
                            (kDir / "qwen3.jinja").string());
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_FALSE(q->bos_token.has_value());
  EXPECT_EQ(q->eos_token, "<|endoftext|>");
  ChatTemplateOptions opt;
  opt.add_generation_prompt = true;
  opt.extra = {{"enable_thinking", false}};
  auto out = RenderChatTemplate(q->source, nlohmann::ordered_json::parse(R"([{"role":"user","content":"Hi"}])"), opt);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
}

}  // namespace
}  // namespace moed::chat

namespace moed::chat {
namespace {

// Every prefix of every real template either parses or gives a syntax error; odd message shapes render or give an
// error. Nothing crashes or hangs.
TEST(ChatTemplateRobustness, PrefixesAndOddMessages) {
  const auto odd = nlohmann::ordered_json::parse(R"([
      [], [1, "two", null], [{"role": "user"}], [{"content": "no role"}],
      [{"role": "user", "content": [{"type": "text", "text": "parts"}]}],
      [{"role": "assistant", "content": null, "tool_calls": [{"function": {"name": "f", "arguments": {}}}]}],
      [{"role": "tool", "content": 7}], [{"role": "system", "content": "s"}, {"role": "system", "content": "t"}]])");
  int parsed = 0, refused = 0;
  for (const auto& e : fs::directory_iterator(kDir)) {
    if (e.path().extension() != ".jinja") continue;
    const std::string src = Slurp(e.path());
    for (size_t len = 0; len <= src.size(); len += 7) {
      auto t = ChatTemplate::Parse(src.substr(0, len));
      (t.ok() ? parsed : refused)++;
      if (!t.ok()) EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
    }
    auto t = ChatTemplate::Parse(src);
    ASSERT_TRUE(t.ok());
    for (const auto& messages : odd) {
      for (bool gen : {false, true}) {
        ChatTemplateOptions opt;
        opt.add_generation_prompt = gen;
        auto out = t->Render(messages, opt);
        if (!out.ok()) EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument) << out.status();
      }
    }
  }
  EXPECT_GT(parsed, 0);
  EXPECT_GT(refused, 0);
}

TEST(ChatTemplateRobustness, RecursiveMacroIsAnError) {
  auto out = RenderChatTemplate("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
                                nlohmann::ordered_json::array(), {});
  ASSERT_FALSE(out.ok());
  EXPECT_THAT(out.status().message(), HasSubstr("recursion"));
}

}  // namespace
}  // namespace moed::chat
