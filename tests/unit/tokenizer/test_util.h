// Shared helpers for the tokenizer tests: model directories, JSON loading, streaming decode.
#pragma once

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "engine/tokenizer/tokenizer.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace moed::tokenizer_test {

inline const std::vector<std::string>& ModelDirs() {
  static const std::vector<std::string> dirs = {"models/fortune-moe", "tests/fixtures/tiny-mixtral",
                                                "tests/fixtures/tiny-qwen2-moe", "tests/fixtures/tiny-qwen3-moe",
                                                "tests/fixtures/tiny-olmoe", "tests/fixtures/tiny-deepseek-v3"};
  return dirs;
}

inline std::string SourcePath(const std::string& relative) { return std::string(MOED_SOURCE_DIR) + "/" + relative; }

inline nlohmann::json ReadJson(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  std::stringstream buffer;
  buffer << in.rdbuf();
  return nlohmann::json::parse(buffer.str());
}

inline const nlohmann::json& Cases() {
  static const nlohmann::json cases = ReadJson(SourcePath("tests/unit/tokenizer/data/cases.json"));
  return cases;
}

// Decodes `ids` through IncrementalDetokenizer, checking every chunk is valid UTF-8.
inline std::string StreamDecode(const Tokenizer& tok, const std::vector<int32_t>& ids) {
  IncrementalDetokenizer detok(tok);
  std::string out;
  for (int32_t id : ids) out += detok.Push(id);
  out += detok.Finish();
  return out;
}

}  // namespace moed::tokenizer_test
