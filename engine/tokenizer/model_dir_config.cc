// Reading BOS/EOS settings from the JSON files beside a tokenizer.
#include "engine/tokenizer/model_dir_config.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/common/status_macros.h"

namespace moed {
namespace {

// "eos_token": "</s>" or {"content": "</s>", ...}.
std::optional<std::string> TokenText(const nlohmann::json& config, const char* key) {
  const auto it = config.find(key);
  if (it == config.end()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) {
    return (*it)["content"].get<std::string>();
  }
  return std::nullopt;
}

// "eos_token_id": 2 or [2, 32000]; absent or null → empty.
absl::StatusOr<std::vector<int32_t>> TokenIds(const nlohmann::json& config, const std::string& path) {
  const auto it = config.find("eos_token_id");
  if (it == config.end() || it->is_null()) return std::vector<int32_t>{};
  if (it->is_number_integer()) return std::vector<int32_t>{it->get<int32_t>()};
  if (!it->is_array()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": eos_token_id must be an integer or a list"));
  }
  std::vector<int32_t> ids;
  for (const auto& v : *it) {
    if (!v.is_number_integer()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": eos_token_id list holds a non-integer"));
    }
    ids.push_back(v.get<int32_t>());
  }
  return ids;
}

std::optional<bool> OptionalBool(const nlohmann::json& config, const char* key) {
  const auto it = config.find(key);
  if (it == config.end() || !it->is_boolean()) return std::nullopt;
  return it->get<bool>();
}

// A Metaspace pre-tokenizer with prepend_scheme "first", alone or inside a Sequence.
bool HasMetaspaceFirst(const nlohmann::json& pre) {
  if (!pre.is_object()) return false;
  if (pre.value("type", "") == "Sequence" && pre.contains("pretokenizers") && pre["pretokenizers"].is_array()) {
    for (const nlohmann::json& p : pre["pretokenizers"]) {
      if (HasMetaspaceFirst(p)) return true;
    }
    return false;
  }
  return pre.value("type", "") == "Metaspace" && pre.value("prepend_scheme", "") == "first";
}

}  // namespace

absl::StatusOr<nlohmann::json> ReadJsonFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::stringstream buffer;
  buffer << in.rdbuf();
  nlohmann::json parsed = nlohmann::json::parse(buffer.str(), nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return absl::InvalidArgumentError(absl::StrCat(path, ": not valid JSON"));
  if (!parsed.is_object()) return absl::InvalidArgumentError(absl::StrCat(path, ": top level is not an object"));
  return parsed;
}

absl::StatusOr<ModelDirTokenConfig> ReadModelDirTokenConfig(const std::string& model_dir) {
  namespace fs = std::filesystem;
  ModelDirTokenConfig out;
  const std::string tokenizer_config = (fs::path(model_dir) / "tokenizer_config.json").string();
  if (fs::exists(tokenizer_config)) {
    MOED_ASSIGN_OR_RETURN(const nlohmann::json config, ReadJsonFile(tokenizer_config));
    out.add_bos_token = OptionalBool(config, "add_bos_token");
    out.add_eos_token = OptionalBool(config, "add_eos_token");
    out.bos_token = TokenText(config, "bos_token");
    out.eos_token = TokenText(config, "eos_token");
    if (config.contains("tokenizer_class") && config["tokenizer_class"].is_string()) {
      out.tokenizer_class = config["tokenizer_class"].get<std::string>();
    }
  }
  const std::string tokenizer_json = (fs::path(model_dir) / "tokenizer.json").string();
  if (fs::exists(fs::path(model_dir) / "tokenizer.model") && fs::exists(tokenizer_json)) {
    MOED_ASSIGN_OR_RETURN(const nlohmann::json tj, ReadJsonFile(tokenizer_json));
    out.metaspace_prepend_first = tj.contains("pre_tokenizer") && HasMetaspaceFirst(tj["pre_tokenizer"]);
  }
  for (const char* name : {"generation_config.json", "config.json"}) {
    const std::string path = (fs::path(model_dir) / name).string();
    if (!fs::exists(path)) continue;
    MOED_ASSIGN_OR_RETURN(const nlohmann::json config, ReadJsonFile(path));
    MOED_ASSIGN_OR_RETURN(out.eos_token_ids, TokenIds(config, path));
    if (!out.eos_token_ids.empty()) break;
  }
  return out;
}

}  // namespace moed
