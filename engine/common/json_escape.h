// JsonEscape: a byte string as the body of a JSON string literal (for hand-written JSON lines: logs, traces).
#pragma once

#include <string>
#include <string_view>

namespace moed {

// Quotes, backslashes and control bytes escaped (\" \\ \u00XX); every other byte copied as it is, so valid UTF-8
// stays valid. The surrounding quotes are not added.
std::string JsonEscape(std::string_view s);

}  // namespace moed
