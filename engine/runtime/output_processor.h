// OutputProcessor: one request's sampled tokens → streamed text (incremental detokenization, stop strings).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/runtime/stop_matcher.h"
#include "engine/tokenizer/tokenizer.h"

namespace moed {

// Borrows `tokenizer` (must outlive it). Not thread-safe; one per request.
class OutputProcessor {
 public:
  OutputProcessor(const Tokenizer& tokenizer, std::vector<std::string> stops);

  struct Delta {
    std::string text;      // whole UTF-8 characters that may be emitted now
    bool stopped = false;  // a stop string completed; `text` ends before it
  };
  // Feeds one generated token (not EOS: EOS adds no text).
  Delta Push(int32_t token);
  // The stream ends without a stop string: returns the held-back text and the detokenizer's tail.
  // A stop string completed by the tail still cuts the text.
  std::string Finish();

 private:
  IncrementalDetokenizer detok_;
  StopMatcher stops_;
};

}  // namespace moed
