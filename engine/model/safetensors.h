// Safetensors: header parsing and validation (pure functions, fuzzable) and an mmap'd file.
//
// File layout: u64 little-endian N | N bytes of JSON header | data section.
// Header: {"<tensor>": {"dtype": "BF16", "shape": [r, c], "data_offsets": [begin, end]}, ...,
//          "__metadata__": {"k": "v"}}; offsets are bytes into the data section.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "engine/model/dtype.h"
#include "engine/model/mapped_file.h"

namespace moed {

// Largest header accepted (the reference implementation's limit).
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100ull << 20;

// Parses "BF16" / "F16" / "F32"; other names → nullopt.
std::optional<DType> ParseDTypeName(std::string_view name);

struct SafetensorsEntry {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets into the data section, begin <= end <= data size
  uint64_t end = 0;
};

// A validated header: every entry lies inside the data section, sizes match shapes, no two overlap
// (gaps between tensors are allowed).
struct SafetensorsHeader {
  std::vector<SafetensorsEntry> tensors;  // sorted by name
  std::map<std::string, std::string> metadata;
  absl::flat_hash_map<std::string, size_t> index;  // name → position in `tensors`

  const SafetensorsEntry* Find(std::string_view name) const;
};

// Where header and data lie in the whole file.
struct SafetensorsLayout {
  std::string_view header_json;  // points into the bytes given to SplitSafetensors
  uint64_t data_offset = 0;      // 8 + N
  uint64_t data_size = 0;
};

// Reads the length prefix of a whole file's bytes and checks it against the file size.
// Pure; errors begin with `file_name`.
absl::StatusOr<SafetensorsLayout> SplitSafetensors(std::string_view file_bytes, std::string_view file_name);

// Validates a header against a data section of `data_size` bytes. Pure (no I/O, no global state),
// never crashes on any input; errors name `file_name` and, where one is involved, the tensor.
absl::StatusOr<SafetensorsHeader> ParseSafetensorsHeader(std::string_view header_json, uint64_t data_size,
                                                         std::string_view file_name);

// An mmap'd, validated safetensors file. Immutable; safe to share between threads.
class SafetensorsFile {
 public:
  // Maps and validates `path`; errors name `path`.
  static absl::StatusOr<std::shared_ptr<const SafetensorsFile>> Open(const std::string& path);

  const std::string& path() const { return mapping_->path(); }
  const SafetensorsHeader& header() const { return header_; }
  const SafetensorsEntry* Find(std::string_view name) const { return header_.Find(name); }
  // First byte of `e` in the mapping (aligned only as the file happens to be).
  const uint8_t* data(const SafetensorsEntry& e) const { return mapping_->data() + data_offset_ + e.begin; }
  const std::shared_ptr<const MappedFile>& mapping() const { return mapping_; }

 private:
  SafetensorsFile(std::shared_ptr<const MappedFile> mapping, SafetensorsHeader header, uint64_t data_offset)
      : mapping_(std::move(mapping)), header_(std::move(header)), data_offset_(data_offset) {}

  std::shared_ptr<const MappedFile> mapping_;
  SafetensorsHeader header_;
  uint64_t data_offset_ = 0;
};

// "[64, 32]"
std::string ShapeString(const std::vector<int64_t>& shape);

}  // namespace moed
