// OutputProcessor: detokenizer feeding the stop matcher.
#include "engine/runtime/output_processor.h"

namespace moed {

OutputProcessor::OutputProcessor(const Tokenizer& tokenizer, std::vector<std::string> stops)
    : detok_(tokenizer), stops_(std::move(stops)) {}

OutputProcessor::Delta OutputProcessor::Push(int32_t token) {
  Delta delta;
  delta.text = stops_.Append(detok_.Push(token), &delta.stopped);
  return delta;
}

std::string OutputProcessor::Finish() {
  bool stopped = false;
  std::string text = stops_.Append(detok_.Finish(), &stopped);
  if (!stopped) text += stops_.Flush();
  return text;
}

}  // namespace moed
