// Opens a checkpoint directory (single file or sharded) and hands out tensor views.
#include "engine/model/checkpoint.h"

#include <cstring>

#include "absl/status/status.h"
#include "engine/common/str_cat.h"
#include "engine/common/file_io.h"
#include "engine/common/status_macros.h"
#include "engine/model/json_fields.h"

namespace moed {
namespace {

constexpr std::string_view kIndexName = "model.safetensors.index.json";
constexpr std::string_view kSingleName = "model.safetensors";

// Shard names are plain relative paths inside the checkpoint directory.
bool IsSafeShardName(std::string_view s) {
  if (s.empty() || s.front() == '/') return false;
  if (s == ".." || s.starts_with("../") || s.find("/../") != std::string_view::npos || s.ends_with("/..")) {
    return false;
  }
  return s.find('\0') == std::string_view::npos;
}

}  // namespace

absl::StatusOr<Checkpoint> Checkpoint::Open(const std::string& dir) {
  Checkpoint ckpt;
  const std::string index_path = JoinPath(dir, kIndexName);
  if (!IsRegularFile(index_path)) {
    const std::string single = JoinPath(dir, kSingleName);
    if (!IsRegularFile(single)) {
      return absl::NotFoundError(Concat(dir, ": no ", kSingleName, " or ", kIndexName, " found"));
    }
    MOED_ASSIGN_OR_RETURN(std::shared_ptr<const SafetensorsFile> file, SafetensorsFile::Open(single));
    for (const SafetensorsEntry& e : file->header().tensors) ckpt.where_.emplace(e.name, 0);
    ckpt.files_.push_back(std::move(file));
    ckpt.source_ = single;
    return ckpt;
  }

  ckpt.source_ = index_path;
  MOED_ASSIGN_OR_RETURN(std::string text, ReadFileToString(index_path));
  MOED_ASSIGN_OR_RETURN(nlohmann::json root, ParseJsonText(text, index_path));
  const nlohmann::json* map = root.is_object() ? JsonFields(root, index_path).Find("weight_map") : nullptr;
  if (map == nullptr || !map->is_object()) {
    return absl::InvalidArgumentError(Concat(index_path, ": field 'weight_map' must be an object"));
  }
  absl::flat_hash_map<std::string, int> shard_ids;  // shard file name → index into files_
  for (auto it = map->begin(); it != map->end(); ++it) {
    if (!it->is_string()) {
      return absl::InvalidArgumentError(Concat(index_path, ": weight_map entry for tensor '", it.key(),
                                                     "' must be a shard file name"));
    }
    const std::string& shard = it->get_ref<const std::string&>();
    if (!IsSafeShardName(shard)) {
      return absl::InvalidArgumentError(Concat(index_path, ": tensor '", it.key(), "' names shard '", shard,
                                                     "', which is not a path inside the checkpoint directory"));
    }
    auto [pos, inserted] = shard_ids.emplace(shard, static_cast<int>(ckpt.files_.size()));
    if (inserted) {
      const std::string path = JoinPath(dir, shard);
      if (!IsRegularFile(path)) {
        return absl::NotFoundError(Concat(index_path, ": shard '", shard, "' (listed for tensor '", it.key(),
                                                "') not found at ", path));
      }
      MOED_ASSIGN_OR_RETURN(std::shared_ptr<const SafetensorsFile> file, SafetensorsFile::Open(path));
      ckpt.files_.push_back(std::move(file));
    }
    const SafetensorsFile& file = *ckpt.files_[pos->second];
    if (file.Find(it.key()) == nullptr) {
      return absl::InvalidArgumentError(Concat(index_path, ": tensor '", it.key(), "' is listed in shard '",
                                                     shard, "' but absent from ", file.path()));
    }
    ckpt.where_.emplace(it.key(), pos->second);
  }
  return ckpt;
}

std::optional<Checkpoint::Located> Checkpoint::Find(std::string_view name) const {
  auto it = where_.find(ToAbsl(name));
  if (it == where_.end()) return std::nullopt;
  const SafetensorsFile* file = files_[it->second].get();
  return Located{file, file->Find(name)};
}

TensorView Checkpoint::View(const Located& t, std::vector<std::shared_ptr<const void>>& storage) const {
  TensorView v;
  v.name = t.entry->name;
  v.dtype = t.entry->dtype;
  v.shape = t.entry->shape;
  const uint8_t* src = t.file->data(*t.entry);
  const size_t bytes = t.entry->end - t.entry->begin;
  if (reinterpret_cast<uintptr_t>(src) % DTypeSize(v.dtype) == 0) {
    v.data = src;
    return v;
  }
  auto copy = std::make_shared<std::vector<uint64_t>>((bytes + 7) / 8);  // 8-byte aligned
  std::memcpy(copy->data(), src, bytes);
  v.data = copy->data();
  storage.push_back(std::move(copy));
  return v;
}

std::vector<std::shared_ptr<const void>> Checkpoint::Mappings() const {
  std::vector<std::shared_ptr<const void>> out;
  for (const auto& f : files_) out.push_back(f);
  return out;
}

}  // namespace moed
