// Detokenizer checks: byte-fallback runs, invalid UTF-8, streaming chunks, lossy decoding.
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "engine/tokenizer/tokenizer.h"
#include "engine/tokenizer/utf8.h"
#include "gtest/gtest.h"
#include "tests/unit/tokenizer/test_util.h"

namespace moed {
namespace {

using tokenizer_test::SourcePath;

constexpr int32_t kByteBase = 3;  // fortune-moe: <0x00> is id 3

class DetokenizerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<std::unique_ptr<Tokenizer>> loaded = LoadTokenizer(SourcePath("models/fortune-moe"));
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    tok_ = loaded->release();
  }
  static void TearDownTestSuite() { delete tok_; }
  static int32_t Byte(int b) { return kByteBase + b; }
  static int32_t Word(const std::string& text) {
    const std::vector<int32_t> ids = *tok_->Encode(text);
    EXPECT_EQ(ids.size(), 2u) << text;  // BOS + one piece
    return ids.back();
  }
  static Tokenizer* tok_;
};
Tokenizer* DetokenizerTest::tok_ = nullptr;

TEST_F(DetokenizerTest, MultiByteCharacterSplitOverByteTokens) {
  ASSERT_TRUE(tok_->IsByteFallback(Byte(0xE2)));
  const int32_t the = Word("the");
  IncrementalDetokenizer detok(*tok_);
  EXPECT_EQ(detok.Push(the), "the");  // leading space stripped once
  EXPECT_EQ(detok.Push(Byte(0xE2)), "");
  EXPECT_EQ(detok.Push(Byte(0x82)), "");
  EXPECT_EQ(detok.Push(Byte(0xAC)), "");  // the run may still turn invalid: held until it ends
  EXPECT_EQ(detok.Push(the), "\u20ac the");
  EXPECT_EQ(detok.Finish(), "");
  EXPECT_EQ(tok_->Decode({the, Byte(0xE2), Byte(0x82), Byte(0xAC), the}), "the\u20ac the");
}

TEST_F(DetokenizerTest, InvalidByteRunsBecomeOneReplacementPerByte) {
  const std::string fffd(utf8::kReplacement);
  // tokenizers' ByteFallback: a run that is not valid UTF-8 as a whole → U+FFFD per byte.
  EXPECT_EQ(tok_->Decode({Byte('A'), Byte(0xFF)}), fffd + fffd);
  EXPECT_EQ(tok_->Decode({Byte(0xE2), Byte(0x82)}), fffd + fffd);
  IncrementalDetokenizer detok(*tok_);
  EXPECT_EQ(detok.Push(Byte('A')), "");
  EXPECT_EQ(detok.Push(Byte(0xFF)), fffd + fffd);  // can never become valid: emitted at once
  EXPECT_EQ(detok.Push(Byte('B')), fffd);
  EXPECT_EQ(detok.Finish(), "");
}

TEST_F(DetokenizerTest, IncompleteTailIsFlushedByFinish) {
  IncrementalDetokenizer detok(*tok_);
  EXPECT_EQ(detok.Push(Byte(0xF0)), "");
  EXPECT_EQ(detok.Push(Byte(0x9F)), "");
  const std::string fffd(utf8::kReplacement);
  EXPECT_EQ(detok.Finish(), fffd + fffd);
}

TEST_F(DetokenizerTest, LeadingSpaceStrippedOnlyAtSequenceStart) {
  const int32_t the = Word("the");
  EXPECT_EQ(tok_->Decode({Byte(' '), the}), " the");  // two spaces, one stripped
  IncrementalDetokenizer detok(*tok_);
  std::string out = detok.Push(Byte(' '));
  out += detok.Push(the);
  out += detok.Push(the);
  out += detok.Finish();
  EXPECT_EQ(out, " the the");
}

TEST_F(DetokenizerTest, RandomSequencesStreamLikeDecode) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> any_id(0, tok_->vocab_size() - 1);
  std::uniform_int_distribution<int> any_byte(0x80, 0xFF);
  for (int trial = 0; trial < 300; ++trial) {
    std::vector<int32_t> ids;
    for (int i = 0; i < 16; ++i) ids.push_back(rng() % 2 ? Byte(any_byte(rng)) : any_id(rng));
    IncrementalDetokenizer detok(*tok_);
    std::string streamed;
    for (int32_t id : ids) {
      const std::string chunk = detok.Push(id);
      ASSERT_TRUE(utf8::IsValid(chunk));
      streamed += chunk;
    }
    streamed += detok.Finish();
    ASSERT_EQ(streamed, tok_->Decode(ids)) << trial;
  }
}

TEST(Utf8Test, LossyMatchesPythonErrorsReplace) {
  const nlohmann::json& cases = tokenizer_test::Cases()["lossy"];
  ASSERT_FALSE(cases.empty());
  for (const auto& c : cases) {
    std::string bytes;
    for (int b : c["bytes"].get<std::vector<int>>()) bytes.push_back(static_cast<char>(b));
    EXPECT_EQ(utf8::Lossy(bytes), c["text"].get<std::string>()) << c["bytes"].dump();
  }
}

TEST(Utf8Test, ByteLevelStreamingHoldsPartialCharacters) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> loaded = LoadTokenizer(SourcePath("tests/fixtures/tiny-qwen2-moe"));
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const Tokenizer& tok = **loaded;
  const std::vector<int32_t> ids = *tok.Encode("🙂 ok €");
  IncrementalDetokenizer detok(tok);
  std::string streamed;
  for (int32_t id : ids) {
    const std::string chunk = detok.Push(id);
    EXPECT_TRUE(utf8::IsValid(chunk)) << id;
    streamed += chunk;
  }
  streamed += detok.Finish();
  EXPECT_EQ(streamed, "🙂 ok €");
}

}  // namespace
}  // namespace moed
