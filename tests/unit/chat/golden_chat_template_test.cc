// Renders every fixture chat template on the conversations of its golden file and compares byte for byte with
// transformers' rendering (tools/parity/make_chat_goldens.py), raised errors included.
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/chat/chat_template.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace moed::chat {
namespace {

namespace fs = std::filesystem;
const fs::path kDir = fs::path(MOED_SOURCE_DIR) / "tests" / "fixtures" / "chat_templates";

std::string Slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class GoldenChatTemplate : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenChatTemplate, MatchesTransformers) {
  auto golden = nlohmann::ordered_json::parse(Slurp(kDir / "goldens" / (GetParam() + ".json")));
  auto tmpl = ChatTemplate::Parse(Slurp(kDir / golden["template"].get<std::string>()));
  ASSERT_TRUE(tmpl.ok()) << tmpl.status();
  int rendered = 0, raised = 0;
  for (const auto& c : golden["cases"]) {
    SCOPED_TRACE(c["name"].get<std::string>());
    ChatTemplateOptions opt;
    opt.add_generation_prompt = c["add_generation_prompt"].get<bool>();
    if (c.contains("bos_token")) opt.bos_token = c["bos_token"].get<std::string>();
    if (c.contains("eos_token")) opt.eos_token = c["eos_token"].get<std::string>();
    if (c.contains("tools")) opt.tools = c["tools"];
    if (c.contains("extra")) opt.extra = c["extra"];
    auto out = tmpl->Render(c["messages"], opt);
    if (c.contains("error")) {
      ++raised;
      ASSERT_FALSE(out.ok()) << "expected an error, rendered: " << *out;
      EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
      EXPECT_EQ(out.status().message(), c["error"].get<std::string>());
    } else {
      ++rendered;
      ASSERT_TRUE(out.ok()) << out.status();
      EXPECT_EQ(*out, c["expected"].get<std::string>());
    }
  }
  EXPECT_GE(rendered + raised, 20);
}

std::vector<std::string> GoldenNames() {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(kDir / "goldens")) names.push_back(e.path().stem().string());
  std::sort(names.begin(), names.end());
  return names;
}

std::string TestName(const ::testing::TestParamInfo<std::string>& info) {
  std::string s = info.param;
  for (char& c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return s;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, GoldenChatTemplate, ::testing::ValuesIn(GoldenNames()), TestName);

TEST(GoldenChatTemplateFiles, EveryTemplateHasGoldens) {
  int templates = 0;
  for (const auto& e : fs::directory_iterator(kDir)) {
    if (e.path().extension() != ".jinja") continue;
    ++templates;
    EXPECT_TRUE(fs::exists(kDir / "goldens" / (e.path().stem().string() + ".json"))) << e.path();
  }
  EXPECT_GE(templates, 6);
}

}  // namespace
}  // namespace moed::chat
