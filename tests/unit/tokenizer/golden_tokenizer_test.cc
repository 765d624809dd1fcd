// Golden tokenizer checks: every fixture's and fortune-moe's golden.json prompts and greedy texts.
#include <memory>
#include <string>
#include <vector>

#include "engine/tokenizer/bpe_tokenizer.h"
#include "engine/tokenizer/model_dir_config.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/tokenizer/utf8.h"
#include "gtest/gtest.h"
#include "tests/unit/tokenizer/test_util.h"

namespace moed {
namespace {

using tokenizer_test::ModelDirs;
using tokenizer_test::ReadJson;
using tokenizer_test::SourcePath;
using tokenizer_test::StreamDecode;

std::vector<int32_t> GreedyIds(const nlohmann::json& c) {
  if (c.contains("greedy_ids")) return c["greedy_ids"].get<std::vector<int32_t>>();
  std::vector<int32_t> ids;
  for (const auto& step : c["greedy"]) ids.push_back(step["token"].get<int32_t>());
  return ids;
}

// Runs the golden checks of `dir` against `tok`.
void CheckGolden(const Tokenizer& tok, const std::string& dir) {
  const nlohmann::json golden = ReadJson(SourcePath(dir + "/golden.json"));
  ASSERT_FALSE(golden["cases"].empty());
  for (const auto& c : golden["cases"]) {
    const std::string prompt = c["prompt"].get<std::string>();
    absl::StatusOr<std::vector<int32_t>> ids = tok.Encode(prompt);
    ASSERT_TRUE(ids.ok()) << ids.status();
    EXPECT_EQ(*ids, c["input_ids"].get<std::vector<int32_t>>()) << dir << " prompt: " << prompt;
    const std::vector<int32_t> greedy = GreedyIds(c);
    const std::string expected = c["greedy_text"].get<std::string>();
    EXPECT_EQ(tok.Decode(greedy), expected) << dir << " prompt: " << prompt;
    EXPECT_EQ(StreamDecode(tok, greedy), expected) << dir << " prompt: " << prompt;
    // The prompt decodes back to itself after the BOS text where one is prepended; SentencePiece-style decoding
    // ("<s>" then "▁The") shows a space there, byte-level decoding (DeepSeek) does not.
    const std::string bos = tok.bos_id() ? tok.TokenBytes(*tok.bos_id()) : "";
    const std::string gap = !bos.empty() && tok.strips_leading_space() ? " " : "";
    EXPECT_EQ(tok.Decode(*ids), bos + gap + prompt) << dir;
  }
}

class GoldenTokenizerTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenTokenizerTest, LoadTokenizerMatchesTransformers) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = LoadTokenizer(SourcePath(GetParam()));
  ASSERT_TRUE(tok.ok()) << tok.status();
  CheckGolden(**tok, GetParam());
}

TEST_P(GoldenTokenizerTest, TokenizerJsonMatchesTransformers) {
  const std::string dir = SourcePath(GetParam());
  absl::StatusOr<ModelDirTokenConfig> config = ReadModelDirTokenConfig(dir);
  ASSERT_TRUE(config.ok()) << config.status();
  absl::StatusOr<std::unique_ptr<BpeTokenizer>> tok = BpeTokenizer::Load(dir + "/tokenizer.json", *config);
  ASSERT_TRUE(tok.ok()) << tok.status();
  CheckGolden(**tok, GetParam());
}

TEST_P(GoldenTokenizerTest, SpecialTokensAndEos) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> loaded = LoadTokenizer(SourcePath(GetParam()));
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const Tokenizer& tok = **loaded;
  const bool llama_style = GetParam().find("fortune") != std::string::npos || GetParam().find("mixtral") != std::string::npos;
  const bool deepseek = GetParam().find("deepseek") != std::string::npos;
  if (deepseek) {  // byte-level BPE; TemplateProcessing prepends BOS; EOS from config.json
    EXPECT_EQ(tok.bos_id(), 0);
    EXPECT_EQ(tok.eos_ids(), std::vector<int32_t>{1});
    EXPECT_FALSE(tok.strips_leading_space());
    EXPECT_EQ(tok.TokenBytes(0), "<\uFF5Cbegin\u2581of\u2581sentence\uFF5C>");
    EXPECT_EQ(tok.TokenBytes(1), "<\uFF5Cend\u2581of\u2581sentence\uFF5C>");
  } else if (llama_style) {
    EXPECT_EQ(tok.bos_id(), 1);
    EXPECT_EQ(tok.eos_ids(), std::vector<int32_t>{2});
    EXPECT_TRUE(tok.strips_leading_space());
    EXPECT_EQ(tok.TokenBytes(1), "<s>");
    EXPECT_EQ(tok.TokenBytes(2), "</s>");
    EXPECT_EQ(tok.TokenBytes(0), "<unk>");
    EXPECT_EQ(tok.Decode({0, 1, 2}), "<unk><s></s>");
  } else {
    EXPECT_EQ(tok.bos_id(), std::nullopt);
    EXPECT_EQ(tok.eos_ids(), std::vector<int32_t>{0});
    EXPECT_FALSE(tok.strips_leading_space());
    EXPECT_EQ(tok.TokenBytes(0), "<|endoftext|>");
  }
  EXPECT_TRUE(tok.IsSpecial(0));
  EXPECT_EQ(tok.TokenBytes(-1), "");
  EXPECT_EQ(tok.TokenBytes(tok.vocab_size()), "");
  EXPECT_FALSE(tok.IsSpecial(tok.vocab_size()));
}

TEST_P(GoldenTokenizerTest, EveryTokenStreamsLikeDecode) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> loaded = LoadTokenizer(SourcePath(GetParam()));
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const Tokenizer& tok = **loaded;
  std::vector<int32_t> all;
  for (int32_t id = 0; id < tok.vocab_size(); ++id) {
    all.push_back(id);
    const std::string one = tok.Decode({id});
    ASSERT_TRUE(utf8::IsValid(one)) << "id " << id;
    ASSERT_EQ(StreamDecode(tok, {id}), one) << "id " << id;
  }
  EXPECT_EQ(StreamDecode(tok, all), tok.Decode(all));
}

INSTANTIATE_TEST_SUITE_P(AllModels, GoldenTokenizerTest, ::testing::ValuesIn(tokenizer_test::ModelDirs()),
                         [](const auto& info) {
                           std::string name = info.param.substr(info.param.rfind('/') + 1);
                           for (char& c : name) c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
                           return name;
                         });

}  // namespace
}  // namespace moed
