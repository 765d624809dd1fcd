// Tests for the safetensors header parser, the length-prefix split and SafetensorsFile on real and corrupted files.
#include "engine/model/safetensors.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/model/model_test_util.h"

namespace moed {
namespace {

using ::moed::testing::FixtureDir;
using ::moed::testing::Frame;
using ::moed::testing::HeaderOf;
using ::moed::testing::ReadAll;
using ::moed::testing::TempDir;
using ::moed::testing::WriteAll;
using ::testing::HasSubstr;

constexpr char kFile[] = "model-00002-of-00002.safetensors";

// Expects the header to be rejected with a message containing `needle`.
void ExpectHeaderError(const std::string& header, uint64_t data_size, const std::string& needle) {
  absl::StatusOr<SafetensorsHeader> h = ParseSafetensorsHeader(header, data_size, kFile);
  ASSERT_FALSE(h.ok()) << "accepted: " << header;
  EXPECT_EQ(h.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(h.status().message()), HasSubstr(needle));
}

TEST(SafetensorsHeaderTest, ParsesValidHeaderWithGapsAndMetadata) {
  const std::string header = R"({"__metadata__": {"format": "pt"},
    "b": {"dtype": "F32", "shape": [2, 2], "data_offsets": [20, 36]},
    "a": {"dtype": "BF16", "shape": [3], "data_offsets": [0, 6]},
    "e": {"dtype": "F16", "shape": [0, 5], "data_offsets": [6, 6]},
    "s": {"dtype": "F16", "shape": [], "data_offsets": [36, 38]}})";
  absl::StatusOr<SafetensorsHeader> h = ParseSafetensorsHeader(header, 40, kFile);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->tensors.size(), 4u);
  EXPECT_EQ(h->metadata.at("format"), "pt");
  const SafetensorsEntry* b = h->Find("b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->dtype, DType::kF32);
  EXPECT_EQ(b->shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(b->begin, 20u);
  EXPECT_EQ(b->end, 36u);
  EXPECT_EQ(h->Find("s")->shape.size(), 0u);  // a scalar: one element
  EXPECT_EQ(h->Find("zzz"), nullptr);
}

TEST(SafetensorsHeaderTest, ParsesEveryFixtureHeader) {
  for (const char* name : {"tiny-mixtral", "tiny-qwen2-moe", "tiny-qwen3-moe", "tiny-olmoe"}) {
    const std::string path = FixtureDir(name) + "/model.safetensors";
    const std::string bytes = ReadAll(path);
    absl::StatusOr<SafetensorsLayout> layout = SplitSafetensors(bytes, path);
    ASSERT_TRUE(layout.ok()) << layout.status();
    absl::StatusOr<SafetensorsHeader> h = ParseSafetensorsHeader(layout->header_json, layout->data_size, path);
    ASSERT_TRUE(h.ok()) << h.status();
    EXPECT_GT(h->tensors.size(), 20u) << name;
  }
}

TEST(SafetensorsHeaderTest, JsonErrors) {
  ExpectHeaderError("{\"a\": {\"dtype\": ", 10, "model-00002-of-00002.safetensors: header: invalid JSON");
  ExpectHeaderError("", 10, "header: invalid JSON");
  ExpectHeaderError("[1,2]", 10, "header must be a JSON object");
  ExpectHeaderError(R"({"a": 5})", 10, "tensor 'a': entry must be an object, found 5");
  ExpectHeaderError(R"({"__metadata__": [1]})", 10, "'__metadata__' must be an object of strings");
  ExpectHeaderError(R"({"__metadata__": {"k": 1}})", 10, "'__metadata__' value of 'k' must be a string");
}

TEST(SafetensorsHeaderTest, DtypeErrors) {
  ExpectHeaderError(R"({"w": {"dtype": "F64", "shape": [1], "data_offsets": [0, 8]}})", 8,
                    "model-00002-of-00002.safetensors: tensor 'w': unsupported dtype 'F64' (supported: BF16, F16, F32)");
  ExpectHeaderError(R"({"w": {"dtype": "bf16", "shape": [1], "data_offsets": [0, 2]}})", 8,
                    "tensor 'w': unsupported dtype 'bf16'");
  ExpectHeaderError(R"({"w": {"dtype": 3, "shape": [1], "data_offsets": [0, 2]}})", 8,
                    "tensor 'w': 'dtype' must be a string");
  ExpectHeaderError(R"({"w": {"shape": [1], "data_offsets": [0, 2]}})", 8, "tensor 'w': 'dtype' must be a string");
}

TEST(SafetensorsHeaderTest, ShapeErrors) {
  ExpectHeaderError(R"({"w": {"dtype": "F32", "shape": [-1, 2], "data_offsets": [0, 8]}})", 8,
                    "tensor 'w': shape entries must be non-negative integers, found -1");
  ExpectHeaderError(R"({"w": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 8]}})", 8,
                    "shape entries must be non-negative integers, found 1.5");
  ExpectHeaderError(R"({"w": {"dtype": "F32", "shape": "2", "data_offsets": [0, 8]}})", 8,
                    "tensor 'w': 'shape' must be a list");
  ExpectHeaderError(
      R"({"w": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 8]}})", 8,
      "tensor 'w': shape [4294967296,4294967296] is too large");
  ExpectHeaderError(R"({"w": {"dtype": "F32", "shape": [99999999999999999999], "data_offsets": [0, 8]}})", 8,
                    "shape entries must be non-negative integers");
  ExpectHeaderError(R"({"w": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, 10]}})", 16,
                    "tensor 'w': shape [2, 3] of BF16 needs 12 bytes but data_offsets [0,10] span 10");
}

TEST(SafetensorsHeaderTest, OffsetErrors) {
  ExpectHeaderError(R"({"model.layers.3.mlp.gate.weight": {"dtype": "BF16", "shape": [5], "data_offsets": [10, 20]}})",
                    16,
                    "model-00002-of-00002.safetensors: tensor 'model.layers.3.mlp.gate.weight': data_offsets [10,20] "
                    "outside data section of 16 bytes");
  ExpectHeaderError(R"({"w": {"dtype": "BF16", "shape": [1], "data_offsets": [4, 2]}})", 16,
                    "tensor 'w': data_offsets [4,2] run backwards");
  ExpectHeaderError(R"({"w": {"dtype": "BF16", "shape": [1], "data_offsets": [0]}})", 16,
                    "tensor 'w': 'data_offsets' must be a list of two integers");
  ExpectHeaderError(R"({"w": {"dtype": "BF16", "shape": [1], "data_offsets": [-2, 0]}})", 16,
                    "'data_offsets' must be non-negative integers");
  ExpectHeaderError(R"({"w": {"dtype": "BF16", "shape": [1], "data_offsets": [18446744073709551614, 18446744073709551616]}})",
                    16, "'data_offsets' must be non-negative integers");
}

TEST(SafetensorsHeaderTest, OverlapsAreRejected) {
  ExpectHeaderError(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                        "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
                    16, "tensor 'b': data_offsets [4,12] overlap tensor 'a' at [0,8]");
  ExpectHeaderError(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                        "b": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})",
                    16, "overlap tensor");
}

TEST(SafetensorsSplitTest, LengthPrefixErrors) {
  absl::StatusOr<SafetensorsLayout> l = SplitSafetensors("abc", "x.safetensors");
  ASSERT_FALSE(l.ok());
  EXPECT_THAT(std::string(l.status().message()),
              HasSubstr("x.safetensors: file is 3 bytes, too short for the 8-byte header length"));
  l = SplitSafetensors(Frame("{}", "").substr(0, 9), "x.safetensors");
  ASSERT_FALSE(l.ok());
  EXPECT_THAT(std::string(l.status().message()),
              HasSubstr("x.safetensors: header length 2 exceeds the 1 bytes after the length prefix"));
  std::string huge(16, '\0');
  huge[7] = 0x7f;  // N ≈ 9e18
  l = SplitSafetensors(huge, "x.safetensors");
  ASSERT_FALSE(l.ok());
  EXPECT_THAT(std::string(l.status().message()), HasSubstr("exceeds the limit of 104857600 bytes"));
  l = SplitSafetensors(Frame("{}", "abcd"), "x.safetensors");
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_EQ(l->header_json, "{}");
  EXPECT_EQ(l->data_offset, 10u);
  EXPECT_EQ(l->data_size, 4u);
}

// Corrupted copies of a real fixture file, each rejected by SafetensorsFile::Open with the designed message.
class CorruptFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    original_ = ReadAll(FixtureDir("tiny-mixtral") + "/model.safetensors");
    header_ = HeaderOf(FixtureDir("tiny-mixtral") + "/model.safetensors");
    data_ = original_.substr(8 + header_.size());
    path_ = dir_.File("model.safetensors");
  }

  std::string OpenError(const std::string& bytes) {
    WriteAll(path_, bytes);
    absl::StatusOr<std::shared_ptr<const SafetensorsFile>> f = SafetensorsFile::Open(path_);
    EXPECT_FALSE(f.ok());
    return f.ok() ? "" : std::string(f.status().message());
  }

  // The header with the first occurrence of `from` replaced by `to`.
  std::string Edit(const std::string& from, const std::string& to) {
    std::string h = header_;
    const size_t pos = h.find(from);
    EXPECT_NE(pos, std::string::npos) << from;
    return h.replace(pos, from.size(), to);
  }

  TempDir dir_;
  std::string original_, header_, data_, path_;
};

TEST_F(CorruptFileTest, IntactCopyOpens) {
  WriteAll(path_, original_);
  absl::StatusOr<std::shared_ptr<const SafetensorsFile>> f = SafetensorsFile::Open(path_);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->path(), path_);
  EXPECT_NE((*f)->Find("model.norm.weight"), nullptr);
}

TEST_F(CorruptFileTest, TruncatedFile) {
  EXPECT_THAT(OpenError(original_.substr(0, original_.size() - 100)),
              HasSubstr(path_ + ": tensor 'model.norm.weight': data_offsets [1100288,1100416] outside data section of "
                                "1100316 bytes"));
}

TEST_F(CorruptFileTest, TruncatedHeader) {
  EXPECT_THAT(OpenError(original_.substr(0, 8 + header_.size() / 2)),
              HasSubstr(path_ + ": header length 7504 exceeds the 3752 bytes after the length prefix"));
  EXPECT_THAT(OpenError(original_.substr(0, 5)), HasSubstr(path_ + ": file is 5 bytes, too short"));
  EXPECT_THAT(OpenError(""), HasSubstr(path_ + ": file is 0 bytes"));
}

TEST_F(CorruptFileTest, HugeHeaderLength) {
  std::string bytes = original_;
  bytes[6] = 0x10;  // N = 0x10 << 48 + 7504
  EXPECT_THAT(OpenError(bytes), HasSubstr(path_ + ": header length 4503599627378000 exceeds the limit"));
}

TEST_F(CorruptFileTest, GarbageJson) {
  std::string garbage = header_;
  for (size_t i = 100; i < 140; ++i) garbage[i] = static_cast<char>(0x80 + i % 50);
  EXPECT_THAT(OpenError(Frame(garbage, data_)), HasSubstr(path_ + ": header: invalid JSON"));
}

TEST_F(CorruptFileTest, OverlappingOffsets) {
  // embed_tokens is [131072, 262144]; move it onto lm_head's bytes [0, 131072].
  EXPECT_THAT(OpenError(Frame(Edit("[131072,262144]", "[65536,196608]"), data_)),
              HasSubstr("tensor 'model.embed_tokens.weight': data_offsets [65536,196608] overlap tensor "
                        "'lm_head.weight' at [0,131072]"));
}

TEST_F(CorruptFileTest, OffsetPastEnd) {
  EXPECT_THAT(OpenError(Frame(Edit("[1100288,1100416]", "[1100416,1100544]"), data_)),
              HasSubstr("tensor 'model.norm.weight': data_offsets [1100416,1100544] outside data section of 1100416 "
                        "bytes"));
}

TEST_F(CorruptFileTest, WrongDtypeString) {
  const size_t pos = header_.find("\"model.norm.weight\"");
  ASSERT_NE(pos, std::string::npos);
  std::string h = header_;
  h.replace(h.find("\"BF16\"", pos), 6, "\"BOOL\"");
  EXPECT_THAT(OpenError(Frame(h, data_)),
              HasSubstr(path_ + ": tensor 'model.norm.weight': unsupported dtype 'BOOL' (supported: BF16, F16, F32)"));
}

TEST_F(CorruptFileTest, ShapeSizeMismatch) {
  const size_t pos = header_.find("\"model.norm.weight\"");
  std::string h = header_;
  h.replace(h.find("[64]", pos), 4, "[65]");
  EXPECT_THAT(OpenError(Frame(h, data_)),
              HasSubstr("tensor 'model.norm.weight': shape [65] of BF16 needs 130 bytes but data_offsets "
                        "[1100288,1100416] span 128"));
}

TEST(SafetensorsFileTest, MissingFileIsNotFound) {
  TempDir dir;
  absl::StatusOr<std::shared_ptr<const SafetensorsFile>> f = SafetensorsFile::Open(dir.File("nope.safetensors"));
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(f.status().message()), HasSubstr("nope.safetensors: cannot open"));
}

}  // namespace
}  // namespace moed
