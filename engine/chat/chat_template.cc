// Chat template API (see chat_template.h): the variables transformers passes, and template discovery on disk.
#include "engine/chat/chat_template.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/chat/interpreter.h"
#include "engine/chat/parser.h"

namespace moed::chat {

absl::StatusOr<ChatTemplate> ChatTemplate::Parse(const std::string& source) {
  auto body = ParseTemplate(source);
  if (!body.ok()) return body.status();
  ChatTemplate t;
  t.body_ = std::make_shared<const Body>(std::move(*body));
  return t;
}

absl::StatusOr<std::string> ChatTemplate::Render(const nlohmann::ordered_json& messages,
                                                 const ChatTemplateOptions& options) const {
  if (!messages.is_array()) return absl::InvalidArgumentError("messages must be a JSON list");
  if (!options.tools.is_null() && !options.tools.is_array()) {
    return absl::InvalidArgumentError("tools must be a JSON list or null");
  }
  if (!options.extra.is_object()) return absl::InvalidArgumentError("extra template variables must be a JSON object");
  // As render_jinja_template: messages, tools, documents and add_generation_prompt are always defined; special
  // tokens only when the tokenizer has them, and extra variables override them.
  Dict vars;
  auto set = [&vars](const std::string& k, Value v) {
    for (auto& [key, val] : vars) {
      if (key == k) {
        val = std::move(v);
        return;
      }
    }
    vars.emplace_back(k, std::move(v));
  };
  if (options.bos_token) set("bos_token", Value::String(*options.bos_token));
  if (options.eos_token) set("eos_token", Value::String(*options.eos_token));
  for (auto it = options.extra.begin(); it != options.extra.end(); ++it) set(it.key(), Value::FromJson(it.value()));
  set("messages", Value::FromJson(messages));
  set("tools", Value::FromJson(options.tools));
  set("documents", Value::None());
  set("add_generation_prompt", Value::Bool(options.add_generation_prompt));
  return moed::chat::Render(*body_, vars);
}

absl::StatusOr<std::string> RenderChatTemplate(const std::string& source, const nlohmann::ordered_json& messages,
                                               const ChatTemplateOptions& options) {
  auto t = ChatTemplate::Parse(source);
  if (!t.ok()) return t.status();
  return t->Render(messages, options);
}

namespace {

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("cannot read chat template file ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::optional<std::string> TokenText(const nlohmann::ordered_json& config, const char* key) {
  auto it = config.find(key);
  if (it == config.end()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) {
    return (*it)["content"].get<std::string>();
  }
  return std::nullopt;
}

}  // namespace

absl::StatusOr<ModelChatTemplate> LoadChatTemplate(const std::string& model_dir, const std::string& override_file,
                                                   const std::string& name) {
  namespace fs = std::filesystem;
  ModelChatTemplate out;
  nlohmann::ordered_json config = nlohmann::ordered_json::object();
  const fs::path config_path = fs::path(model_dir) / "tokenizer_config.json";
  if (fs::exists(config_path)) {
    auto text = ReadFile(config_path.string());
    if (!text.ok()) return text.status();
    config = nlohmann::ordered_json::parse(*text, nullptr, /*allow_exceptions=*/false);
    if (config.is_discarded() || !config.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(config_path.string(), " is not a JSON object"));
    }
    out.bos_token = TokenText(config, "bos_token");
    out.eos_token = TokenText(config, "eos_token");
  }
  const fs::path jinja_path = fs::path(model_dir) / "chat_template.jinja";
  if (!override_file.empty()) {
    auto text = ReadFile(override_file);
    if (!text.ok()) return text.status();
    out.source = std::move(*text);
    out.origin = override_file;
  } else if (fs::exists(jinja_path)) {
    auto text = ReadFile(jinja_path.string());
    if (!text.ok()) return text.status();
    out.source = std::move(*text);
    out.origin = jinja_path.string();
  } else if (auto it = config.find("chat_template"); it != config.end() && !it->is_null()) {
    out.origin = config_path.string();
    if (it->is_string()) {
      out.source = it->get<std::string>();
    } else if (it->is_array()) {
      for (const auto& entry : *it) {
        if (entry.is_object() && entry.value("name", "") == name && entry.contains("template") &&
            entry["template"].is_string()) {
          out.source = entry["template"].get<std::string>();
        }
      }
      if (out.source.empty()) {
        return absl::NotFoundError(absl::StrCat(config_path.string(), " has no chat template named '", name, "'"));
      }
    } else {
      return absl::InvalidArgumentError(absl::StrCat(config_path.string(),
                                                     ": chat_template must be a string or a list of {name, template}"));
    }
  } else {
    return absl::NotFoundError(absl::StrCat("model ", model_dir,
                                            " has no chat template (no chat_template in tokenizer_config.json, no "
                                            "chat_template.jinja); pass --chat-template FILE"));
  }
  return out;
}

}  // namespace moed::chat
