// TokenizerBase: the per-id decode tables and BOS/EOS facts shared by the tokenizer implementations.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/tokenizer/tokenizer.h"

namespace moed {

class TokenizerBase : public Tokenizer {
 public:
  std::string TokenBytes(int32_t id) const override {
    return InRange(id) ? token_bytes_[id] : std::string();
  }
  bool strips_leading_space() const override { return strips_leading_space_; }
  int vocab_size() const override { return static_cast<int>(token_bytes_.size()); }
  std::optional<int32_t> bos_id() const override { return bos_id_; }
  std::vector<int32_t> eos_ids() const override { return eos_ids_; }
  bool IsSpecial(int32_t id) const override { return InRange(id) && special_[id] != 0; }
  bool IsByteFallback(int32_t id) const override { return InRange(id) && byte_fallback_[id] != 0; }

 protected:
  bool InRange(int32_t id) const { return id >= 0 && static_cast<size_t>(id) < token_bytes_.size(); }

  // Sizes all tables to `n` ids (empty bytes, not special, not byte-fallback).
  void ResizeTables(size_t n) {
    token_bytes_.assign(n, std::string());
    special_.assign(n, 0);
    byte_fallback_.assign(n, 0);
  }

  std::vector<std::string> token_bytes_;  // [id] → bytes the token contributes to decoded text
  std::vector<uint8_t> special_;          // [id] → 1 for special tokens
  std::vector<uint8_t> byte_fallback_;    // [id] → 1 for <0xNN> pieces
  bool strips_leading_space_ = false;
  std::optional<int32_t> bos_id_;  // the BOS Encode prepends; nullopt when it prepends none
  std::vector<int32_t> eos_ids_;
};

// Parses "<0xNN>" into its byte value; nullopt for any other piece.
std::optional<unsigned char> ParseBytePiece(const std::string& piece);

}  // namespace moed
