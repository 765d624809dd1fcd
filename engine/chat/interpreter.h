// Renders a parsed Jinja template against a variable dict (the evaluator).
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "engine/chat/ast.h"

namespace moed::chat {

// Renders `body` with `vars` (plus the globals of builtins.h) visible. A raise_exception call gives
// InvalidArgument carrying the template's own message; other runtime errors (undefined attribute access, type
// errors, unknown filters) give InvalidArgument "chat template error at line L, column C: ...".
absl::StatusOr<std::string> Render(const Body& body, const Dict& vars);

}  // namespace moed::chat
