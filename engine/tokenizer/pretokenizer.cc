// Normalizer and PreTokenizer: the subset of tokenizers' components the supported models use.
#include "engine/tokenizer/pretokenizer.h"

#include <unicode/normalizer2.h>
#include <unicode/unistr.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "engine/common/status_macros.h"
#include "engine/tokenizer/byte_unicode.h"
#include "re2/re2.h"

namespace moed {
namespace {

std::string TypeOf(const nlohmann::json& config) {
  if (!config.is_object() || !config.contains("type") || !config["type"].is_string()) return "";
  return config["type"].get<std::string>();
}

std::string StringField(const nlohmann::json& config, const char* key, std::string fallback) {
  const auto it = config.find(key);
  return (it != config.end() && it->is_string()) ? it->get<std::string>() : fallback;
}

bool BoolField(const nlohmann::json& config, const char* key, bool fallback) {
  const auto it = config.find(key);
  return (it != config.end() && it->is_boolean()) ? it->get<bool>() : fallback;
}

absl::StatusOr<SplitBehavior> ParseBehavior(const std::string& name) {
  if (name == "Isolated") return SplitBehavior::kIsolated;
  if (name == "Removed") return SplitBehavior::kRemoved;
  if (name == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (name == "Contiguous") return SplitBehavior::kContiguous;
  return absl::InvalidArgumentError(absl::StrCat("pre_tokenizer Split: unknown behavior '", name, "'"));
}

// {"String": "x"} → quoted literal; {"Regex": "..."} → the regex itself.
absl::StatusOr<std::string> PatternOf(const nlohmann::json& config, const char* where) {
  const auto it = config.find("pattern");
  if (it != config.end() && it->is_object()) {
    if (it->contains("Regex") && (*it)["Regex"].is_string()) return (*it)["Regex"].get<std::string>();
    if (it->contains("String") && (*it)["String"].is_string()) {
      return re2::RE2::QuoteMeta((*it)["String"].get<std::string>());
    }
  }
  return absl::InvalidArgumentError(absl::StrCat(where, ": pattern must be {\"String\": ...} or {\"Regex\": ...}"));
}

std::string Nfc(std::string_view text) {
  UErrorCode error = U_ZERO_ERROR;
  const icu::Normalizer2* nfc = icu::Normalizer2::getNFCInstance(error);
  if (U_FAILURE(error)) return std::string(text);
  const icu::UnicodeString in = icu::UnicodeString::fromUTF8(icu::StringPiece(text.data(), text.size()));
  const icu::UnicodeString normalized = nfc->normalize(in, error);
  if (U_FAILURE(error)) return std::string(text);
  std::string out;
  normalized.toUTF8String(out);
  return out;
}

}  // namespace

absl::StatusOr<Normalizer> Normalizer::FromJson(const nlohmann::json& config) {
  Normalizer out;
  if (config.is_null()) return out;
  const std::string type = TypeOf(config);
  if (type == "Sequence") {
    if (!config.contains("normalizers") || !config["normalizers"].is_array()) {
      return absl::InvalidArgumentError("normalizer Sequence: missing 'normalizers' list");
    }
    for (const auto& child : config["normalizers"]) {
      MOED_ASSIGN_OR_RETURN(Normalizer inner, FromJson(child));
      out.steps_.insert(out.steps_.end(), inner.steps_.begin(), inner.steps_.end());
    }
    return out;
  }
  if (type == "NFC") {
    out.steps_.push_back({Step::kNfc, "", ""});
    return out;
  }
  if (type == "Prepend") {
    out.steps_.push_back({Step::kPrepend, StringField(config, "prepend", ""), ""});
    return out;
  }
  if (type == "Replace") {
    const auto pattern = config.find("pattern");
    if (pattern == config.end() || !pattern->is_object() || !pattern->contains("String")) {
      return absl::InvalidArgumentError("normalizer Replace: only {\"String\": ...} patterns are supported");
    }
    out.steps_.push_back({Step::kReplace, (*pattern)["String"].get<std::string>(), StringField(config, "content", "")});
    return out;
  }
  return absl::UnimplementedError(absl::StrCat("normalizer type '", type, "' is not supported"));
}

std::string Normalizer::Run(std::string_view text) const {
  std::string out(text);
  for (const Step& step : steps_) {
    switch (step.kind) {
      case Step::kNfc:
        out = Nfc(out);
        break;
      case Step::kPrepend:
        if (!out.empty()) out = step.a + out;
        break;
      case Step::kReplace:
        if (!step.a.empty()) out = absl::StrReplaceAll(out, {{step.a, step.b}});
        break;
    }
  }
  return out;
}

absl::StatusOr<PreTokenizer::Step> PreTokenizer::StepFromJson(const nlohmann::json& config) {
  const std::string type = TypeOf(config);
  Step step;
  if (type == "Split") {
    step.kind = Step::kSplit;
    if (BoolField(config, "invert", false)) {
      return absl::UnimplementedError("pre_tokenizer Split with invert=true is not supported");
    }
    MOED_ASSIGN_OR_RETURN(const std::string pattern, PatternOf(config, "pre_tokenizer Split"));
    MOED_ASSIGN_OR_RETURN(step.regex, SplitRegex::Create(pattern));
    MOED_ASSIGN_OR_RETURN(step.behavior, ParseBehavior(StringField(config, "behavior", "Isolated")));
    return step;
  }
  if (type == "ByteLevel") {
    step.kind = Step::kByteLevel;
    step.add_prefix_space = BoolField(config, "add_prefix_space", false);
    if (BoolField(config, "use_regex", true)) {
      MOED_ASSIGN_OR_RETURN(step.regex, SplitRegex::Create(kGpt2SplitPattern));
    }
    return step;
  }
  if (type == "Metaspace") {
    step.kind = Step::kMetaspace;
    step.replacement = StringField(config, "replacement", "\xE2\x96\x81");
    const std::string scheme = StringField(config, "prepend_scheme",
                                           BoolField(config, "add_prefix_space", true) ? "always" : "never");
    if (scheme == "always") {
      step.prepend = Step::kAlways;
    } else if (scheme == "first") {
      step.prepend = Step::kFirst;
    } else if (scheme == "never") {
      step.prepend = Step::kNever;
    } else {
      return absl::InvalidArgumentError(absl::StrCat("pre_tokenizer Metaspace: unknown prepend_scheme '", scheme, "'"));
    }
    if (BoolField(config, "split", true)) {
      MOED_ASSIGN_OR_RETURN(step.regex, SplitRegex::Create(re2::RE2::QuoteMeta(step.replacement)));
      step.behavior = SplitBehavior::kMergedWithNext;
    }
    return step;
  }
  return absl::UnimplementedError(absl::StrCat("pre_tokenizer type '", type, "' is not supported"));
}

absl::StatusOr<PreTokenizer> PreTokenizer::FromJson(const nlohmann::json& config) {
  PreTokenizer out;
  if (config.is_null()) return out;
  if (TypeOf(config) != "Sequence") {
    MOED_ASSIGN_OR_RETURN(Step step, StepFromJson(config));
    out.steps_.push_back(std::move(step));
    return out;
  }
  if (!config.contains("pretokenizers") || !config["pretokenizers"].is_array()) {
    return absl::InvalidArgumentError("pre_tokenizer Sequence: missing 'pretokenizers' list");
  }
  for (const auto& child : config["pretokenizers"]) {
    MOED_ASSIGN_OR_RETURN(Step step, StepFromJson(child));
    out.steps_.push_back(std::move(step));
  }
  return out;
}

std::vector<std::string> PreTokenizer::Run(std::string_view segment, bool at_text_start) const {
  if (segment.empty()) return {};
  std::vector<std::string> pieces = {std::string(segment)};
  for (const Step& step : steps_) {
    std::vector<std::string> next;
    for (size_t i = 0; i < pieces.size(); ++i) {
      std::string piece = std::move(pieces[i]);
      switch (step.kind) {
        case Step::kSplit:
          for (std::string& p : SplitText(piece, *step.regex, step.behavior)) next.push_back(std::move(p));
          break;
        case Step::kByteLevel: {
          if (step.add_prefix_space && !piece.starts_with(' ')) piece.insert(0, " ");
          std::vector<std::string> parts =
              step.regex ? SplitText(piece, *step.regex, SplitBehavior::kIsolated) : std::vector<std::string>{piece};
          for (const std::string& p : parts) next.push_back(byte_unicode::Encode(p));
          break;
        }
        case Step::kMetaspace: {
          piece = absl::StrReplaceAll(piece, {{" ", step.replacement}});
          const bool first = at_text_start && i == 0;
          const bool prepend = step.prepend == Step::kAlways || (step.prepend == Step::kFirst && first);
          if (prepend && !piece.starts_with(step.replacement)) piece.insert(0, step.replacement);
          if (!step.regex) {
            next.push_back(std::move(piece));
            break;
          }
          for (std::string& p : SplitText(piece, *step.regex, step.behavior)) next.push_back(std::move(p));
          break;
        }
      }
    }
    pieces = std::move(next);
  }
  std::erase_if(pieces, [](const std::string& p) { return p.empty(); });
  return pieces;
}

}  // namespace moed
