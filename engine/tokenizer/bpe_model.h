// BPE model of a tokenizer.json: vocabulary + ranked merges, applied to one pre-tokenized piece.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"

namespace moed {

struct BpeOptions {
  bool byte_fallback = false;     // unknown characters → <0xNN> pieces
  bool fuse_unk = false;          // consecutive unknowns → one unk id
  bool ignore_merges = false;     // a piece found whole in the vocabulary is one token
  std::optional<int32_t> unk_id;  // id of the unk token, when configured
};

// Immutable after Create; Encode is thread-safe.
class BpeModel {
 public:
  // `merges` in rank order (rank 0 merges first); both halves and their concatenation must be
  // in `vocab`, else an error naming the merge.
  static absl::StatusOr<BpeModel> Create(absl::flat_hash_map<std::string, int32_t> vocab,
                                         const std::vector<std::pair<std::string, std::string>>& merges,
                                         BpeOptions options);

  // Appends the ids of `piece` (vocabulary form: byte-level characters or "▁" text) to `ids`.
  // Error when a character is neither in the vocabulary nor coverable by byte fallback or unk.
  absl::Status Encode(std::string_view piece, std::vector<int32_t>& ids) const;

  const absl::flat_hash_map<std::string, int32_t>& vocab() const { return vocab_; }

 private:
  struct Merge {
    int32_t rank;
    int32_t result;
  };
  static uint64_t PairKey(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  absl::Status InitialSymbols(std::string_view piece, std::vector<int32_t>& symbols) const;

  absl::flat_hash_map<std::string, int32_t> vocab_;
  absl::flat_hash_map<uint64_t, Merge> merges_;  // (left id, right id) → rank, merged id
  std::vector<int32_t> byte_ids_;                // <0xNN> ids, -1 where absent (byte_fallback)
  BpeOptions options_;
};

}  // namespace moed
