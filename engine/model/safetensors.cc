// Safetensors header parsing/validation and the mmap'd file.
#include "engine/model/safetensors.h"

#include <algorithm>
#include <limits>

#include "absl/status/status.h"
#include "engine/common/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/common/status_macros.h"
#include "engine/model/json_fields.h"

namespace moed {
namespace {

using nlohmann::json;

absl::Status TensorError(std::string_view file, std::string_view tensor, std::string_view what) {
  return absl::InvalidArgumentError(Concat(file, ": tensor '", tensor, "': ", what));
}

// Non-negative integer value of `v`, or nullopt.
std::optional<uint64_t> AsUnsigned(const json& v) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer() && v.get<int64_t>() >= 0) return static_cast<uint64_t>(v.get<int64_t>());
  return std::nullopt;
}

absl::StatusOr<SafetensorsEntry> ParseEntry(const std::string& name, const json& v, uint64_t data_size,
                                            std::string_view file) {
  if (!v.is_object()) return TensorError(file, name, Concat("entry must be an object, found ", JsonPreview(v)));
  SafetensorsEntry e;
  e.name = name;

  auto dtype_it = v.find("dtype");
  if (dtype_it == v.end() || !dtype_it->is_string()) return TensorError(file, name, "'dtype' must be a string");
  std::optional<DType> dtype = ParseDTypeName(dtype_it->get_ref<const std::string&>());
  if (!dtype) {
    return TensorError(file, name, Concat("unsupported dtype '", dtype_it->get_ref<const std::string&>(),
                                                "' (supported: BF16, F16, F32)"));
  }
  e.dtype = *dtype;

  auto shape_it = v.find("shape");
  if (shape_it == v.end() || !shape_it->is_array()) return TensorError(file, name, "'shape' must be a list");
  // numel * element size must stay representable; cap the byte count at 2^62.
  const uint64_t kMaxBytes = uint64_t{1} << 62;
  uint64_t bytes = static_cast<uint64_t>(DTypeSize(e.dtype));
  for (const json& d : *shape_it) {
    std::optional<uint64_t> dim = AsUnsigned(d);
    if (!dim || *dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return TensorError(file, name, Concat("shape entries must be non-negative integers, found ",
                                                  JsonPreview(d)));
    }
    if (*dim != 0 && bytes > kMaxBytes / *dim) {
      return TensorError(file, name, Concat("shape ", JsonPreview(*shape_it), " is too large"));
    }
    bytes *= *dim;
    e.shape.push_back(static_cast<int64_t>(*dim));
  }
  if (e.shape.size() > 8) return TensorError(file, name, Concat("shape has ", e.shape.size(), " dimensions"));

  auto off_it = v.find("data_offsets");
  if (off_it == v.end() || !off_it->is_array() || off_it->size() != 2) {
    return TensorError(file, name, "'data_offsets' must be a list of two integers");
  }
  std::optional<uint64_t> begin = AsUnsigned((*off_it)[0]);
  std::optional<uint64_t> end = AsUnsigned((*off_it)[1]);
  if (!begin || !end) {
    return TensorError(file, name, Concat("'data_offsets' must be non-negative integers, found ",
                                                JsonPreview(*off_it)));
  }
  e.begin = *begin;
  e.end = *end;
  const std::string offsets = Concat("data_offsets [", e.begin, ",", e.end, "]");
  if (e.begin > e.end) return TensorError(file, name, Concat(offsets, " run backwards"));
  if (e.end > data_size) {
    return TensorError(file, name, Concat(offsets, " outside data section of ", data_size, " bytes"));
  }
  if (e.end - e.begin != bytes) {
    return TensorError(file, name, Concat("shape ", ShapeString(e.shape), " of ", DTypeName(e.dtype), " needs ",
                                                bytes, " bytes but ", offsets, " span ", e.end - e.begin));
  }
  return e;
}

absl::Status ParseMetadata(const json& v, std::string_view file, std::map<std::string, std::string>& out) {
  if (!v.is_object()) {
    return absl::InvalidArgumentError(Concat(file, ": '__metadata__' must be an object of strings"));
  }
  for (auto it = v.begin(); it != v.end(); ++it) {
    if (!it->is_string()) {
      return absl::InvalidArgumentError(
          Concat(file, ": '__metadata__' value of '", it.key(), "' must be a string"));
    }
    out[it.key()] = it->get<std::string>();
  }
  return absl::OkStatus();
}

// Tensors with bytes may not share any byte; empty tensors are exempt.
absl::Status CheckOverlaps(const std::vector<SafetensorsEntry>& tensors, std::string_view file) {
  std::vector<const SafetensorsEntry*> sorted;
  for (const SafetensorsEntry& e : tensors) {
    if (e.end > e.begin) sorted.push_back(&e);
  }
  std::sort(sorted.begin(), sorted.end(), [](const SafetensorsEntry* a, const SafetensorsEntry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  for (size_t i = 1; i < sorted.size(); ++i) {
    const SafetensorsEntry& a = *sorted[i - 1];
    const SafetensorsEntry& b = *sorted[i];
    if (b.begin < a.end) {
      return TensorError(file, b.name, Concat("data_offsets [", b.begin, ",", b.end, "] overlap tensor '", a.name,
                                                    "' at [", a.begin, ",", a.end, "]"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::optional<DType> ParseDTypeName(std::string_view name) {
  if (name == "BF16") return DType::kBF16;
  if (name == "F16") return DType::kF16;
  if (name == "F32") return DType::kF32;
  return std::nullopt;
}

std::string ShapeString(const std::vector<int64_t>& shape) { return Concat("[", absl::StrJoin(shape, ", "), "]"); }

const SafetensorsEntry* SafetensorsHeader::Find(std::string_view name) const {
  auto it = index.find(ToAbsl(name));
  return it == index.end() ? nullptr : &tensors[it->second];
}

absl::StatusOr<SafetensorsLayout> SplitSafetensors(std::string_view file_bytes, std::string_view file_name) {
  if (file_bytes.size() < 8) {
    return absl::InvalidArgumentError(Concat(file_name, ": file is ", file_bytes.size(),
                                                   " bytes, too short for the 8-byte header length"));
  }
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(file_bytes[i]);
  const uint64_t rest = file_bytes.size() - 8;
  if (n > kMaxSafetensorsHeaderBytes) {
    return absl::InvalidArgumentError(Concat(file_name, ": header length ", n, " exceeds the limit of ",
                                                   kMaxSafetensorsHeaderBytes, " bytes"));
  }
  if (n > rest) {
    return absl::InvalidArgumentError(Concat(file_name, ": header length ", n, " exceeds the ", rest,
                                                   " bytes after the length prefix (truncated file?)"));
  }
  SafetensorsLayout layout;
  layout.header_json = file_bytes.substr(8, n);
  layout.data_offset = 8 + n;
  layout.data_size = rest - n;
  return layout;
}

absl::StatusOr<SafetensorsHeader> ParseSafetensorsHeader(std::string_view header_json, uint64_t data_size,
                                                         std::string_view file_name) {
  MOED_ASSIGN_OR_RETURN(json root, ParseJsonText(header_json, Concat(file_name, ": header")));
  if (!root.is_object()) {
    return absl::InvalidArgumentError(Concat(file_name, ": header must be a JSON object, found ",
                                                   JsonPreview(root)));
  }
  SafetensorsHeader header;
  for (auto it = root.begin(); it != root.end(); ++it) {
    if (it.key() == "__metadata__") {
      MOED_RETURN_IF_ERROR(ParseMetadata(*it, file_name, header.metadata));
      continue;
    }
    if (it.key().empty()) return absl::InvalidArgumentError(Concat(file_name, ": a tensor has an empty name"));
    MOED_ASSIGN_OR_RETURN(SafetensorsEntry e, ParseEntry(it.key(), *it, data_size, file_name));
    header.index.emplace(e.name, header.tensors.size());
    header.tensors.push_back(std::move(e));
  }
  MOED_RETURN_IF_ERROR(CheckOverlaps(header.tensors, file_name));
  return header;
}

absl::StatusOr<std::shared_ptr<const SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  MOED_ASSIGN_OR_RETURN(std::shared_ptr<const MappedFile> mapping, MappedFile::Open(path));
  MOED_ASSIGN_OR_RETURN(SafetensorsLayout layout, SplitSafetensors(mapping->bytes(), path));
  MOED_ASSIGN_OR_RETURN(SafetensorsHeader header, ParseSafetensorsHeader(layout.header_json, layout.data_size, path));
  return std::shared_ptr<const SafetensorsFile>(
      new SafetensorsFile(std::move(mapping), std::move(header), layout.data_offset));
}

}  // namespace moed
