// SentencePieceModel: a thin std-only wrapper of libsentencepiece. Its header declares its own
// `absl::string_view` that clashes with Abseil's, so it is included in sentencepiece_model.cc only,
// and that file includes no Abseil header.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace moed {

// Immutable after Load; Encode and the queries are thread-safe.
class SentencePieceModel {
 public:
  // Loads `path`; on failure returns nullptr and sets `*error`.
  static std::unique_ptr<SentencePieceModel> Load(const std::string& path, std::string* error);
  ~SentencePieceModel();

  // Segments `text`; `dummy_prefix` = false encodes without the "▁" SentencePiece prepends.
  // On failure returns false and sets `*error`.
  bool Encode(std::string_view text, bool dummy_prefix, std::vector<int>* ids, std::string* error) const;

  int size() const;
  std::string IdToPiece(int id) const;
  bool IsControl(int id) const;
  bool IsUnknown(int id) const;
  bool IsByte(int id) const;
  int bos_id() const;  // -1 when the model has none
  int eos_id() const;

 private:
  SentencePieceModel();
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;            // with the dummy prefix
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_no_prefix_;  // add_dummy_prefix = false
};

}  // namespace moed
