// StopMatcher: earliest-match search over the held-back suffix plus the new text.
#include "engine/runtime/stop_matcher.h"

#include <algorithm>

namespace moed {

StopMatcher::StopMatcher(std::vector<std::string> stops) {
  for (std::string& s : stops) {
    if (!s.empty()) stops_.push_back(std::move(s));
  }
}

std::string StopMatcher::Append(std::string_view text, bool* stopped) {
  *stopped = false;
  pending_.append(text);
  // A stop that began before pending_ would have made a longer held-back suffix, so searching
  // pending_ alone finds every match.
  size_t earliest = std::string::npos;
  for (const std::string& stop : stops_) earliest = std::min(earliest, pending_.find(stop));
  if (earliest != std::string::npos) {
    *stopped = true;
    std::string out = pending_.substr(0, earliest);
    pending_.clear();
    return out;
  }
  size_t emit = pending_.size() - HoldBackLength();
  std::string out = pending_.substr(0, emit);
  pending_.erase(0, emit);
  return out;
}

std::string StopMatcher::Flush() {
  std::string out;
  out.swap(pending_);
  return out;
}

size_t StopMatcher::HoldBackLength() const {
  size_t best = 0;
  std::string_view text = pending_;
  for (const std::string& stop : stops_) {
    for (size_t k = std::min(stop.size() - 1, text.size()); k > best; --k) {
      if (text.substr(text.size() - k) == std::string_view(stop).substr(0, k)) {
        best = k;
        break;
      }
    }
  }
  return best;
}

}  // namespace moed
