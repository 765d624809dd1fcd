// BpeTokenizer: parsing tokenizer.json and running the encode pipeline.
#include "engine/tokenizer/bpe_tokenizer.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/common/status_macros.h"
#include "engine/tokenizer/byte_unicode.h"

namespace moed {
namespace {

absl::Status Bad(const std::string& path, std::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", std::string(what)));
}

absl::Status WithPath(const absl::Status& status, const std::string& path) {
  if (status.ok()) return status;
  return absl::Status(status.code(), absl::StrCat(path, ": ", status.message()));
}

bool BoolField(const nlohmann::json& j, const char* key, bool fallback) {
  const auto it = j.find(key);
  return (it != j.end() && it->is_boolean()) ? it->get<bool>() : fallback;
}

std::string TypeOf(const nlohmann::json& j) {
  return (j.is_object() && j.contains("type") && j["type"].is_string()) ? j["type"].get<std::string>() : "";
}

// Merges are "a b" strings (older files) or ["a", "b"] pairs.
absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ParseMerges(const nlohmann::json& merges,
                                                                             const std::string& path) {
  std::vector<std::pair<std::string, std::string>> out;
  if (merges.is_null()) return out;
  if (!merges.is_array()) return Bad(path, "model.merges is not a list");
  out.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const auto& m = merges[i];
    if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      out.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
      continue;
    }
    const std::string s = m.is_string() ? m.get<std::string>() : "";
    const size_t space = s.find(' ', 1);
    if (space == std::string::npos) return Bad(path, absl::StrCat("model.merges[", i, "] is neither \"a b\" nor [\"a\", \"b\"]"));
    out.emplace_back(s.substr(0, space), s.substr(space + 1));
  }
  return out;
}

// Decoder kinds the supported tokenizers use.
struct DecoderInfo {
  bool byte_level = false;    // pieces are GPT-2 byte characters
  bool metaspace = false;     // "▁" → space
  bool byte_fallback = false; // <0xNN> → byte
  bool strip_leading = false; // one leading space removed
};

void ScanDecoder(const nlohmann::json& d, DecoderInfo& info) {
  const std::string type = TypeOf(d);
  if (type == "Sequence" && d.contains("decoders") && d["decoders"].is_array()) {
    for (const auto& child : d["decoders"]) ScanDecoder(child, info);
  } else if (type == "ByteLevel") {
    info.byte_level = true;
  } else if (type == "ByteFallback") {
    info.byte_fallback = true;
  } else if (type == "Replace" || type == "Metaspace") {
    info.metaspace = true;
    if (type == "Metaspace") {
      const std::string scheme = d.value("prepend_scheme", BoolField(d, "add_prefix_space", true) ? "always" : "never");
      info.strip_leading = info.strip_leading || scheme != "never";
    }
  } else if (type == "Strip") {
    info.strip_leading = info.strip_leading || (d.contains("start") && d["start"].is_number_integer() && d["start"].get<int>() > 0);
  }
}

// Bytes a piece contributes under the decoder.
std::string PieceBytes(const std::string& piece, const DecoderInfo& info) {
  if (info.byte_level) {
    std::optional<std::string> bytes = byte_unicode::Decode(piece);
    return bytes ? *bytes : piece;
  }
  if (!info.metaspace) return piece;
  std::string out;
  for (size_t pos = 0; pos < piece.size();) {
    if (piece.compare(pos, 3, "\xE2\x96\x81") == 0) {
      out.push_back(' ');
      pos += 3;
    } else {
      out.push_back(piece[pos++]);
    }
  }
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<BpeTokenizer>> BpeTokenizer::Load(const std::string& path,
                                                                  const ModelDirTokenConfig& config) {
  MOED_ASSIGN_OR_RETURN(const nlohmann::json json, ReadJsonFile(path));
  return FromJson(json, path, config);
}

absl::StatusOr<std::unique_ptr<BpeTokenizer>> BpeTokenizer::FromJson(const nlohmann::json& json,
                                                                     const std::string& path,
                                                                     const ModelDirTokenConfig& config) {
  if (!json.is_object() || !json.contains("model") || !json["model"].is_object()) {
    return Bad(path, "missing 'model' object");
  }
  const nlohmann::json& model = json["model"];
  if (TypeOf(model) != "BPE") return Bad(path, absl::StrCat("model.type '", TypeOf(model), "' is not supported (only BPE)"));
  if (!model.contains("vocab") || !model["vocab"].is_object()) return Bad(path, "model.vocab is not an object");

  absl::flat_hash_map<std::string, int32_t> vocab;
  int32_t max_id = -1;
  for (const auto& [piece, id] : model["vocab"].items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > (1 << 24)) {
      return Bad(path, absl::StrCat("model.vocab['", piece, "'] is not a valid id"));
    }
    vocab[piece] = id.get<int32_t>();
    max_id = std::max(max_id, id.get<int32_t>());
  }
  MOED_ASSIGN_OR_RETURN(const auto merges, ParseMerges(model.value("merges", nlohmann::json()), path));

  std::vector<AddedToken> added;
  if (json.contains("added_tokens") && json["added_tokens"].is_array()) {
    for (const auto& t : json["added_tokens"]) {
      if (!t.is_object() || !t.contains("id") || !t["id"].is_number_integer() || !t.contains("content") ||
          !t["content"].is_string()) {
        return Bad(path, "an added_tokens entry lacks an integer 'id' or a string 'content'");
      }
      added.push_back({t["content"].get<std::string>(), t["id"].get<int32_t>(), BoolField(t, "special", false),
                       BoolField(t, "lstrip", false), BoolField(t, "rstrip", false)});
      max_id = std::max(max_id, added.back().id);
    }
  }

  BpeOptions options;
  options.byte_fallback = BoolField(model, "byte_fallback", false);
  options.fuse_unk = BoolField(model, "fuse_unk", false);
  options.ignore_merges = BoolField(model, "ignore_merges", false);
  if (model.contains("unk_token") && model["unk_token"].is_string()) {
    const auto it = vocab.find(model["unk_token"].get<std::string>());
    if (it != vocab.end()) options.unk_id = it->second;
  }
  auto bpe = BpeModel::Create(vocab, merges, options);
  if (!bpe.ok()) return WithPath(bpe.status(), path);
  auto normalizer = Normalizer::FromJson(json.value("normalizer", nlohmann::json()));
  if (!normalizer.ok()) return WithPath(normalizer.status(), path);
  auto pre_tokenizer = PreTokenizer::FromJson(json.value("pre_tokenizer", nlohmann::json()));
  if (!pre_tokenizer.ok()) return WithPath(pre_tokenizer.status(), path);

  std::unique_ptr<BpeTokenizer> tok(new BpeTokenizer(*std::move(bpe), AddedTokenMatcher(added),
                                                     *std::move(normalizer), *std::move(pre_tokenizer)));
  tok->path_ = path;

  DecoderInfo info;
  ScanDecoder(json.value("decoder", nlohmann::json()), info);
  tok->strips_leading_space_ = info.strip_leading;
  tok->ResizeTables(static_cast<size_t>(max_id + 1));
  for (const auto& [piece, id] : vocab) {
    const std::optional<unsigned char> byte = info.byte_fallback ? ParseBytePiece(piece) : std::nullopt;
    if (byte) {
      tok->token_bytes_[id] = std::string(1, static_cast<char>(*byte));
      tok->byte_fallback_[id] = 1;
      continue;
    }
    tok->token_bytes_[id] = PieceBytes(piece, info);
  }
  for (const AddedToken& t : added) {
    tok->token_bytes_[t.id] = PieceBytes(t.content, info);
    tok->byte_fallback_[t.id] = 0;
    tok->special_[t.id] = t.special ? 1 : 0;
  }

  MOED_RETURN_IF_ERROR(WithPath(tok->ReadPostProcessor(json.value("post_processor", nlohmann::json())), path));
  tok->eos_ids_ = config.eos_token_ids;
  if (tok->eos_ids_.empty() && config.eos_token) {
    for (const AddedToken& t : added) {
      if (t.content == *config.eos_token) tok->eos_ids_.push_back(t.id);
    }
  }
  return tok;
}

absl::Status BpeTokenizer::ReadPostProcessor(const nlohmann::json& post) {
  const std::string type = TypeOf(post);
  if (post.is_null() || type == "ByteLevel") return absl::OkStatus();
  if (type == "Sequence" && post.contains("processors") && post["processors"].is_array()) {
    for (const auto& child : post["processors"]) MOED_RETURN_IF_ERROR(ReadPostProcessor(child));
    return absl::OkStatus();
  }
  if (type != "TemplateProcessing") {
    return absl::UnimplementedError(absl::StrCat("post_processor type '", type, "' is not supported"));
  }
  if (!post.contains("single") || !post["single"].is_array()) {
    return absl::InvalidArgumentError("post_processor TemplateProcessing: missing 'single' template");
  }
  const nlohmann::json specials = post.value("special_tokens", nlohmann::json::object());
  bool after_sequence = false;
  for (const auto& item : post["single"]) {
    if (item.contains("Sequence")) {
      after_sequence = true;
      continue;
    }
    const auto special = item.find("SpecialToken");
    if (special == item.end() || !special->contains("id") || !(*special)["id"].is_string()) {
      return absl::InvalidArgumentError("post_processor TemplateProcessing: a template item is neither Sequence nor SpecialToken");
    }
    const std::string name = (*special)["id"].get<std::string>();
    if (!specials.contains(name) || !specials[name].contains("ids") || !specials[name]["ids"].is_array()) {
      return absl::InvalidArgumentError(absl::StrCat("post_processor TemplateProcessing: special token '", name, "' has no ids"));
    }
    for (const auto& id : specials[name]["ids"]) {
      if (!id.is_number_integer()) return absl::InvalidArgumentError("post_processor TemplateProcessing: non-integer id");
      (after_sequence ? suffix_ids_ : prefix_ids_).push_back(id.get<int32_t>());
    }
  }
  if (prefix_ids_.size() == 1) bos_id_ = prefix_ids_.front();
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int32_t>> BpeTokenizer::Encode(std::string_view text) const {
  std::vector<int32_t> ids = prefix_ids_;
  for (const TextSegment& segment : added_.Split(text)) {
    if (segment.id >= 0) {
      ids.push_back(segment.id);
      continue;
    }
    const std::string normalized = normalizer_.Run(text.substr(segment.begin, segment.end - segment.begin));
    for (const std::string& piece : pre_tokenizer_.Run(normalized, segment.begin == 0)) {
      MOED_RETURN_IF_ERROR(WithPath(model_.Encode(piece, ids), path_));
    }
  }
  ids.insert(ids.end(), suffix_ids_.begin(), suffix_ids_.end());
  return ids;
}

}  // namespace moed
