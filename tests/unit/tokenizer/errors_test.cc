// Error paths of LoadTokenizer: missing directories and files, malformed tokenizer.json.
#include <filesystem>
#include <fstream>
#include <string>

#include "engine/tokenizer/tokenizer.h"
#include "gtest/gtest.h"
#include "tests/unit/tokenizer/test_util.h"

namespace moed {
namespace {

namespace fs = std::filesystem;

class TokenizerErrorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("moed_tok_err_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  void Write(const std::string& name, const std::string& text) { std::ofstream(dir_ / name) << text; }
  absl::Status LoadStatus() { return LoadTokenizer(dir_.string()).status(); }
  fs::path dir_;
};

TEST_F(TokenizerErrorsTest, MissingDirectory) {
  const absl::Status s = LoadTokenizer((dir_ / "nope").string()).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(s.message().find("nope"), std::string::npos) << s;
}

TEST_F(TokenizerErrorsTest, NoTokenizerFiles) {
  const absl::Status s = LoadStatus();
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(s.message().find("tokenizer.json"), std::string::npos) << s;
}

TEST_F(TokenizerErrorsTest, MalformedJsonNamesTheFile) {
  Write("tokenizer.json", "{\"model\": {\"type\": \"BPE\", ");
  const absl::Status s = LoadStatus();
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("tokenizer.json"), std::string::npos) << s;
}

TEST_F(TokenizerErrorsTest, UnsupportedModelTypeNamesTheFile) {
  Write("tokenizer.json", R"({"model": {"type": "WordPiece", "vocab": {}}})");
  const absl::Status s = LoadStatus();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("tokenizer.json"), std::string::npos) << s;
  EXPECT_NE(s.message().find("WordPiece"), std::string::npos) << s;
}

TEST_F(TokenizerErrorsTest, MergeWithUnknownPiece) {
  Write("tokenizer.json", R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a b"]}})");
  const absl::Status s = LoadStatus();
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("merge #0"), std::string::npos) << s;
}

TEST_F(TokenizerErrorsTest, BrokenSentencePieceModel) {
  Write("tokenizer.model", "this is not a protobuf");
  const absl::Status s = LoadStatus();
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("tokenizer.model"), std::string::npos) << s;
}

TEST_F(TokenizerErrorsTest, MalformedGenerationConfig) {
  fs::copy_file(tokenizer_test::SourcePath("tests/fixtures/tiny-olmoe/tokenizer.json"), dir_ / "tokenizer.json");
  Write("generation_config.json", R"({"eos_token_id": "two"})");
  const absl::Status s = LoadStatus();
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("generation_config.json"), std::string::npos) << s;
}

TEST_F(TokenizerErrorsTest, TokenizerJsonAloneLoadsWithNoEos) {
  // A byte-level tokenizer.json with no config.json / generation_config.json beside it: it loads, and nothing
  // names an EOS token.
  fs::copy_file(tokenizer_test::SourcePath("tests/fixtures/tiny-olmoe/tokenizer.json"), dir_ / "tokenizer.json");
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = LoadTokenizer(dir_.string());
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_TRUE((*tok)->eos_ids().empty());  // no config.json: nothing names EOS
}

}  // namespace
}  // namespace moed
