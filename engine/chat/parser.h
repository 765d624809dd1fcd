// Jinja parser: tokens to a statement list, following Jinja's operator precedence.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "engine/chat/ast.h"

namespace moed::chat {

// Parses a whole template. Syntax errors are InvalidArgument naming the line and column ("expected 'endfor'", ...).
// Supported statements: if/elif/else, for (tuple targets, `if` filter, else), set (names, tuples, ns.attr, block
// set), macro, break/continue, and transformers' generation/endgeneration (rendered as its body).
absl::StatusOr<Body> ParseTemplate(const std::string& source);

}  // namespace moed::chat
