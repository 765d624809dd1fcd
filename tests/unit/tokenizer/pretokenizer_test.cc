// Pre-tokenizer and split-regex checks against HF tokenizers' pre_tokenize_str (data/cases.json).
#include <string>
#include <vector>

#include "engine/tokenizer/pretokenizer.h"
#include "engine/tokenizer/split_regex.h"
#include "gtest/gtest.h"
#include "tests/unit/tokenizer/test_util.h"

namespace moed {
namespace {

TEST(PreTokenizerTest, MatchesHfTokenizersOnTrickyStrings) {
  const nlohmann::json& all = tokenizer_test::Cases()["pre_tokenizers"];
  ASSERT_EQ(all.size(), 4u);
  for (const auto& [name, spec] : all.items()) {
    absl::StatusOr<PreTokenizer> pre = PreTokenizer::FromJson(spec["config"]);
    ASSERT_TRUE(pre.ok()) << name << ": " << pre.status();
    for (const auto& c : spec["cases"]) {
      const std::string text = c["text"].get<std::string>();
      EXPECT_EQ(pre->Run(text, /*at_text_start=*/true), c["pieces"].get<std::vector<std::string>>())
          << name << " text: " << text;
    }
  }
}

TEST(SplitRegexTest, LookaheadGivesBackLastSpaceBeforeAWord) {
  absl::StatusOr<std::unique_ptr<SplitRegex>> re = SplitRegex::Create(kGpt2SplitPattern);
  ASSERT_TRUE(re.ok()) << re.status();
  EXPECT_EQ(SplitText("a   b", **re, SplitBehavior::kIsolated), (std::vector<std::string>{"a", "  ", " b"}));
  EXPECT_EQ(SplitText("a   ", **re, SplitBehavior::kIsolated), (std::vector<std::string>{"a", "   "}));
  // U+00A0 is White_Space for the reference regex engines although RE2's \s is ASCII-only.
  EXPECT_EQ(SplitText("a\u00a0\u00a0b", **re, SplitBehavior::kIsolated),
            (std::vector<std::string>{"a", "\u00a0", "\u00a0", "b"}));  // " ?" is ASCII space only
}

TEST(SplitRegexTest, BehaviorsAroundMatches) {
  absl::StatusOr<std::unique_ptr<SplitRegex>> re = SplitRegex::Create("-");
  ASSERT_TRUE(re.ok()) << re.status();
  using V = std::vector<std::string>;
  EXPECT_EQ(SplitText("a-b--c", **re, SplitBehavior::kIsolated), (V{"a", "-", "b", "-", "-", "c"}));
  EXPECT_EQ(SplitText("a-b--c", **re, SplitBehavior::kRemoved), (V{"a", "b", "c"}));
  EXPECT_EQ(SplitText("a-b--c", **re, SplitBehavior::kMergedWithPrevious), (V{"a-", "b-", "-", "c"}));
  EXPECT_EQ(SplitText("a-b--c", **re, SplitBehavior::kMergedWithNext), (V{"a", "-b", "-", "-c"}));
  EXPECT_EQ(SplitText("a-b--c", **re, SplitBehavior::kContiguous), (V{"a", "-", "b", "--", "c"}));
}

TEST(SplitRegexTest, UnsupportedPatternsAreErrors) {
  EXPECT_FALSE(SplitRegex::Create("a(?=b)").ok());
  EXPECT_FALSE(SplitRegex::Create("(?<!x)y").ok());
  EXPECT_FALSE(SplitRegex::Create("[\\S]").ok());
  const absl::StatusOr<std::unique_ptr<SplitRegex>> bad = SplitRegex::Create("(unclosed");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("(unclosed"), std::string::npos) << bad.status();
}

TEST(PreTokenizerTest, UnsupportedTypeIsAnError) {
  const absl::StatusOr<PreTokenizer> pre = PreTokenizer::FromJson(nlohmann::json{{"type", "Whitespace"}});
  ASSERT_FALSE(pre.ok());
  EXPECT_NE(pre.status().message().find("Whitespace"), std::string::npos);
}

TEST(NormalizerTest, NfcComposes) {
  absl::StatusOr<Normalizer> nfc = Normalizer::FromJson(nlohmann::json{{"type", "NFC"}});
  ASSERT_TRUE(nfc.ok()) << nfc.status();
  EXPECT_EQ(nfc->Run("e\u0301"), "\u00e9");
}

}  // namespace
}  // namespace moed
