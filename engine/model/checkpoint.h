// A checkpoint directory's tensors: model.safetensors, or shards named by model.safetensors.index.json.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "engine/model/safetensors.h"
#include "engine/model/tensor.h"

namespace moed {

// Immutable after Open; the shard mappings live as long as the Checkpoint or any storage handed out.
class Checkpoint {
 public:
  // Opens <dir>/model.safetensors.index.json and every shard it names, else <dir>/model.safetensors.
  // Errors: a missing shard names the index and the shard; a tensor listed in the index but absent
  // from its shard names both; every shard is fully validated (see ParseSafetensorsHeader).
  static absl::StatusOr<Checkpoint> Open(const std::string& dir);

  struct Located {
    const SafetensorsFile* file = nullptr;
    const SafetensorsEntry* entry = nullptr;
  };

  // The file named in errors about absent tensors: the index file, or model.safetensors.
  const std::string& source() const { return source_; }
  std::optional<Located> Find(std::string_view name) const;

  // A view of a located tensor. When its bytes are not aligned to its element size, they are
  // copied into an aligned buffer that is appended to `storage` (which must outlive the view).
  TensorView View(const Located& t, std::vector<std::shared_ptr<const void>>& storage) const;

  // The shard mappings, to keep alive in Model::storage.
  std::vector<std::shared_ptr<const void>> Mappings() const;

 private:
  std::string source_;
  std::vector<std::shared_ptr<const SafetensorsFile>> files_;
  absl::flat_hash_map<std::string, int> where_;  // tensor name → index into files_
};

}  // namespace moed
