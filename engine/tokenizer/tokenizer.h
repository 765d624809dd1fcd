// Tokenizer interface: text ↔ token ids for a model directory (SentencePiece or byte-level BPE).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace moed {

// Immutable after load; every method is safe to call from many threads at once.
class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Text → ids, with BOS prepended when the model's tokenizer adds one (tokenizer_config.json
  // add_bos_token / the tokenizer.json post-processor), exactly as transformers' tokenizer(text).
  virtual absl::StatusOr<std::vector<int32_t>> Encode(std::string_view text) const = 0;

  // The raw bytes token `id` contributes to decoded text: byte-fallback pieces (<0xE2>) are one
  // byte, SentencePiece's "▁" is a space, byte-level BPE pieces are mapped back to bytes,
  // special tokens are their text. May be a partial UTF-8 sequence. Out-of-range id → "".
  virtual std::string TokenBytes(int32_t id) const = 0;

  // True when the decoder strips one leading space from the start of a decoded sequence
  // (SentencePiece / Metaspace convention). Applied once, to the first emitted bytes.
  virtual bool strips_leading_space() const = 0;

  virtual int vocab_size() const = 0;
  virtual std::optional<int32_t> bos_id() const = 0;
  virtual std::vector<int32_t> eos_ids() const = 0;
  virtual bool IsSpecial(int32_t id) const = 0;

  // True for byte-fallback pieces (<0xNN>). A run of consecutive byte-fallback tokens decodes to
  // its bytes when they are valid UTF-8 as a whole, else to one U+FFFD per byte (tokenizers'
  // ByteFallback decoder, which transformers' decode uses). Default: the tokenizer has none.
  virtual bool IsByteFallback(int32_t /*id*/) const { return false; }

  // Whole-sequence decode, as transformers' tokenizer.decode(ids) (invalid UTF-8 → U+FFFD).
  std::string Decode(const std::vector<int32_t>& ids) const;
};

// Loads the tokenizer of a model directory: tokenizer.model (SentencePiece) when present,
// else tokenizer.json (byte-level BPE). Reads tokenizer_config.json and generation_config.json
// for BOS/EOS. Errors name the file and what is wrong.
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(const std::string& model_dir);

// Streaming detokenizer for one sequence: Push returns only whole UTF-8 characters; bytes of an
// incomplete character are held until the next token completes them. A sequence that can never
// become valid UTF-8 is emitted as U+FFFD, as transformers' decode does. Not thread-safe; one per stream.
// The concatenation of all Push() results and Finish() equals tokenizer.Decode(all ids).
class IncrementalDetokenizer {
 public:
  explicit IncrementalDetokenizer(const Tokenizer& tokenizer) : tokenizer_(tokenizer) {}
  std::string Push(int32_t id);
  std::string Finish();  // flushes held bytes (incomplete tail → U+FFFD)

 private:
  const Tokenizer& tokenizer_;
  std::string pending_;  // bytes not yet emitted (an incomplete UTF-8 sequence)
  bool emitted_any_ = false;
  std::string byte_run_;           // current run of byte-fallback bytes, held until the run ends
  bool byte_run_invalid_ = false;  // the current run can no longer be valid UTF-8

  std::string EmitComplete(bool flush);  // drains pending_ (whole chars; all of it when flush)
  void EndByteRun();                     // resolves byte_run_ into pending_
};

}  // namespace moed
