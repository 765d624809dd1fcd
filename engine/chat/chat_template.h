// Chat templates: render a model's Jinja chat_template the way transformers' apply_chat_template(tokenize=False)
// does, and find the template of a model directory (tokenizer_config.json, chat_template.jinja, or an override file).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "engine/chat/ast.h"
#include "nlohmann/json.hpp"

namespace moed::chat {

struct ChatTemplateOptions {
  bool add_generation_prompt = false;
  std::optional<std::string> bos_token;  // absent: the template sees bos_token undefined (as for Qwen)
  std::optional<std::string> eos_token;
  nlohmann::ordered_json tools;  // a JSON list of tool schemas, or null (the template sees `tools` as none)
  // More template variables, e.g. {"enable_thinking": false} for Qwen3 or {"thinking": true} for DeepSeek-V3.1;
  // they override bos_token/eos_token like apply_chat_template's kwargs do.
  nlohmann::ordered_json extra = nlohmann::ordered_json::object();
};

// A parsed template; immutable and safe to render from several threads at once.
class ChatTemplate {
 public:
  // Syntax errors are InvalidArgument naming the line and column.
  static absl::StatusOr<ChatTemplate> Parse(const std::string& source);
  // `messages` is the OpenAI-style JSON list of {role, content, ...}; parse requests with nlohmann::ordered_json so
  // that object key order survives (tojson and dict iteration print keys in the request's order, as Python does). A template that calls raise_exception (e.g.
  // roles not alternating) gives InvalidArgument with exactly its message; other render errors give
  // InvalidArgument naming the template line and column.
  absl::StatusOr<std::string> Render(const nlohmann::ordered_json& messages, const ChatTemplateOptions& options) const;

 private:
  std::shared_ptr<const Body> body_;
};

// Parse + Render in one call.
absl::StatusOr<std::string> RenderChatTemplate(const std::string& source, const nlohmann::ordered_json& messages,
                                               const ChatTemplateOptions& options);

// A model's chat template and the special tokens it is rendered with.
struct ModelChatTemplate {
  std::string source;
  std::string origin;  // the file it came from, for logs and errors
  std::optional<std::string> bos_token, eos_token;
};

// Finds the chat template of `model_dir`: `override_file` when not empty (the --chat-template FILE flag, a raw Jinja
// file), else `chat_template.jinja` in the directory, else tokenizer_config.json's `chat_template` (a string, or a
// list of {name, template} from which `name` is picked). bos/eos come from tokenizer_config.json (a string or an
// {"content": ...} token). NotFound when the model has no template; InvalidArgument for unreadable/invalid files.
absl::StatusOr<ModelChatTemplate> LoadChatTemplate(const std::string& model_dir, const std::string& override_file = "",
                                                   const std::string& name = "default");

}  // namespace moed::chat
