// Bearer tokens of the front ends: --auth-token-file holds one token per line ("<token>" or "<token> admin";
// blank lines and lines starting with '#' are skipped). A request carries `authorization: Bearer <token>`.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/core_request.h"

namespace moed::server {

// Immutable after Load; thread-safe.
class Authenticator {
 public:
  // No tokens: every caller is admitted, as admin (no --auth-token-file).
  Authenticator() = default;
  // Errors name the file and line (an unknown role, a token with spaces, an empty file).
  static absl::StatusOr<Authenticator> Load(const std::string& path);
  static absl::StatusOr<Authenticator> Parse(absl::string_view text, const std::string& origin);

  bool enabled() const { return !tokens_.empty(); }

  // `authorization`: the header's value, or nullptr when absent. UNAUTHENTICATED without a known token. The
  // comparison takes the same time whichever token (or none) matches and wherever the bytes differ.
  absl::StatusOr<Caller> Authenticate(const std::string* authorization) const;

 private:
  struct Token {
    std::string value;
    bool admin = false;
  };
  std::vector<Token> tokens_;
};

}  // namespace moed::server
