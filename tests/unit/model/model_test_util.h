// Test helpers for engine/model: temp dirs, file I/O, and rewriting real safetensors checkpoints.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace moed::testing {

inline std::string SourcePath(const std::string& rel) { return std::string(MOED_SOURCE_DIR) + "/" + rel; }
inline std::string FixtureDir(const std::string& name) { return SourcePath("tests/fixtures/" + name); }
inline std::string FortuneDir() { return SourcePath("models/fortune-moe"); }

inline std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

inline void WriteAll(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << "cannot write " << path;
}

// A fresh directory under $TMPDIR, removed with its contents on destruction.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "moed_model_test_XXXXXX").string();
    char* made = ::mkdtemp(tmpl.data());
    if (made == nullptr) std::abort();  // broken test environment
    path_ = made;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Copies every regular file of `src` into `dst`.
inline void CopyDir(const std::string& src, const std::string& dst) {
  for (const auto& e : std::filesystem::directory_iterator(src)) {
    if (e.is_regular_file()) std::filesystem::copy_file(e.path(), dst + "/" + e.path().filename().string());
  }
}

// One tensor of a checkpoint being rebuilt: raw little-endian bytes in `dtype`.
struct RawTensor {
  std::string name;
  std::string dtype;  // "BF16", "F16", "F32", or anything (tests write bad ones on purpose)
  std::vector<int64_t> shape;
  std::string bytes;
};

// 8-byte little-endian length + header + data.
inline std::string Frame(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + data;
}

// Serialises tensors contiguously in the given order. The header is padded with spaces so that
// (8 + header length) % 8 == `misalign` (0 gives the aligned layout writers use).
inline std::string BuildSafetensors(const std::vector<RawTensor>& tensors, int misalign = 0) {
  nlohmann::json header = nlohmann::json::object();
  header["__metadata__"] = {{"format", "pt"}};
  std::string data;
  for (const RawTensor& t : tensors) {
    header[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {data.size(), data.size() + t.bytes.size()}}};
    data += t.bytes;
  }
  std::string h = header.dump();
  while ((8 + h.size()) % 8 != static_cast<size_t>(misalign)) h += ' ';
  return Frame(h, data);
}

// Reads a real safetensors file back into RawTensors (in data order).
inline std::vector<RawTensor> ReadSafetensors(const std::string& path) {
  const std::string bytes = ReadAll(path);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[i]);
  const nlohmann::json header = nlohmann::json::parse(bytes.substr(8, n));
  std::vector<std::pair<uint64_t, RawTensor>> items;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    const uint64_t b = (*it)["data_offsets"][0], e = (*it)["data_offsets"][1];
    items.push_back({b, RawTensor{it.key(), (*it)["dtype"], (*it)["shape"].get<std::vector<int64_t>>(),
                                  bytes.substr(8 + n + b, e - b)}});
  }
  std::sort(items.begin(), items.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<RawTensor> out;
  for (auto& [b, t] : items) out.push_back(std::move(t));
  return out;
}

// The header JSON text of a safetensors file.
inline std::string HeaderOf(const std::string& path) {
  const std::string bytes = ReadAll(path);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[i]);
  return bytes.substr(8, n);
}

// BF16 bytes → F32 bytes (exact).
inline std::string Bf16ToF32Bytes(const std::string& bf16) {
  std::string out(bf16.size() * 2, '\0');
  for (size_t i = 0; i < bf16.size() / 2; ++i) {
    out[4 * i + 2] = bf16[2 * i];
    out[4 * i + 3] = bf16[2 * i + 1];
  }
  return out;
}

}  // namespace moed::testing
