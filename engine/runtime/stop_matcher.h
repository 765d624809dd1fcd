// StopMatcher: finds stop strings in streamed text, across chunk boundaries, holding back text that
// could still become one.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace moed {

// One per stream. Not thread-safe.
class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops);  // empty strings are ignored

  // Appends `text` and returns what may be emitted now. When a stop string completes, sets
  // *stopped, returns the text before the earliest stop and drops the rest.
  std::string Append(std::string_view text, bool* stopped);
  // Releases the held-back text (the stream ended without a stop).
  std::string Flush();

  bool empty() const { return stops_.empty(); }

 private:
  // Length of the longest suffix of pending_ that is a proper prefix of some stop string.
  size_t HoldBackLength() const;

  std::vector<std::string> stops_;
  std::string pending_;  // held back: a suffix that could be the start of a stop string
};

}  // namespace moed
