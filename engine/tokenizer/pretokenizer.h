// Normalizer and pre-tokenizer of a tokenizer.json: text segment → pieces for the BPE model.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/tokenizer/split_regex.h"
#include "nlohmann/json.hpp"

namespace moed {

// tokenizer.json "normalizer": null, NFC, Prepend, Replace (String pattern) or a Sequence of them.
class Normalizer {
 public:
  static absl::StatusOr<Normalizer> FromJson(const nlohmann::json& config);
  std::string Run(std::string_view text) const;

 private:
  struct Step {
    enum Kind { kNfc, kPrepend, kReplace } kind;
    std::string a, b;  // Prepend: a = prefix; Replace: a → b
  };
  std::vector<Step> steps_;
};

// tokenizer.json "pre_tokenizer": null, Split, ByteLevel, Metaspace or a Sequence of them.
// Immutable; Run is thread-safe.
class PreTokenizer {
 public:
  static absl::StatusOr<PreTokenizer> FromJson(const nlohmann::json& config);

  // Splits one segment of input (text between added tokens). `at_text_start`: the segment begins
  // at offset 0 of the input (Metaspace prepend_scheme "first"). ByteLevel steps map bytes to
  // GPT-2's printable characters, so byte-level pieces come out in vocabulary form.
  std::vector<std::string> Run(std::string_view segment, bool at_text_start) const;

 private:
  struct Step {
    enum Kind { kSplit, kByteLevel, kMetaspace } kind;
    std::shared_ptr<const SplitRegex> regex;  // kSplit pattern, ByteLevel GPT-2 regex, Metaspace split
    SplitBehavior behavior = SplitBehavior::kIsolated;
    bool add_prefix_space = false;  // ByteLevel
    std::string replacement;        // Metaspace, UTF-8
    enum Prepend { kAlways, kFirst, kNever } prepend = kAlways;
  };
  static absl::StatusOr<Step> StepFromJson(const nlohmann::json& config);
  std::vector<Step> steps_;
};

}  // namespace moed
