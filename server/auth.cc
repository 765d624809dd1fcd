// Token file parsing and constant-time bearer token checks.
#include "server/auth.h"

#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace moed::server {
namespace {

// Equal bytes and equal lengths; the time depends only on the lengths of the two strings, not their contents.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  const size_t n = a.size() > b.size() ? a.size() : b.size();
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

}  // namespace

absl::StatusOr<Authenticator> Authenticator::Load(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("--auth-token-file ", path, ": cannot be read"));
  std::stringstream text;
  text << in.rdbuf();
  return Parse(text.str(), absl::StrCat("--auth-token-file ", path));
}

absl::StatusOr<Authenticator> Authenticator::Parse(absl::string_view text, const std::string& origin) {
  Authenticator a;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || absl::StartsWith(line, "#")) continue;
    std::vector<absl::string_view> words = absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (words.size() > 2 || (words.size() == 2 && words[1] != "admin")) {
      return absl::InvalidArgumentError(absl::StrCat(origin, " line ", line_number,
                                                     ": expected '<token>' or '<token> admin'"));
    }
    a.tokens_.push_back(Token{std::string(words[0]), words.size() == 2});
  }
  if (a.tokens_.empty()) return absl::InvalidArgumentError(absl::StrCat(origin, ": holds no token"));
  return a;
}

absl::StatusOr<Caller> Authenticator::Authenticate(const std::string* authorization) const {
  if (!enabled()) return Caller{.admin = true};
  constexpr absl::string_view kScheme = "Bearer ";
  if (authorization == nullptr || !absl::StartsWith(*authorization, kScheme)) {
    return absl::UnauthenticatedError("this server needs 'authorization: Bearer <token>'");
  }
  const absl::string_view presented = absl::string_view(*authorization).substr(kScheme.size());
  bool found = false;
  bool admin = false;
  for (const Token& t : tokens_) {  // every token is compared: no early exit on a match
    const bool match = ConstantTimeEquals(presented, t.value);
    found |= match;
    admin |= match && t.admin;
  }
  if (!found) return absl::UnauthenticatedError("the bearer token is not valid");
  return Caller{.admin = admin};
}

}  // namespace moed::server
