// The daemon's absl flags, the MOED_* environment fallback, and the checks on their values.
#include "server/flags.h"

#include <cstdlib>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/time.h"
#include "engine/cache/cache_policy.h"
#include "engine/common/status_macros.h"

ABSL_FLAG(std::string, model, "models/fortune-moe",
          "model directory, or synthetic:<name>[-small] (random weights at a published shape)");
ABSL_FLAG(std::string, tokenizer, "", "tokenizer directory instead of the model's (a synthetic model has none)");
ABSL_FLAG(std::string, host, "0.0.0.0", "address the gRPC and metrics servers bind");
ABSL_FLAG(int, port, 50051, "gRPC port; 0 = pick a free one");
ABSL_FLAG(int, metrics_port, 9400, "Prometheus /metrics port; 0 = pick a free one");
ABSL_FLAG(std::string, backend, "auto", "auto | cpu | cuda");
ABSL_FLAG(int, threads, 0, "CPU backend worker threads; 0 = all hardware threads");
ABSL_FLAG(int, max_running_seqs, 64, "sequences in the running batch");
ABSL_FLAG(int, max_batch_tokens, 512, "tokens per engine step (prefill chunks + decode tokens)");
ABSL_FLAG(int, max_queue, 256, "requests waiting for the batch; more are refused with RESOURCE_EXHAUSTED");
ABSL_FLAG(int, max_model_len, 0, "context limit in tokens; 0 = the model's");
ABSL_FLAG(int, kv_block_size, 16, "tokens per KV-cache block");
ABSL_FLAG(int64_t, kv_cache_bytes, 0, "KV-cache memory in bytes; 0 = enough for max-running-seqs full contexts");
ABSL_FLAG(bool, enable_prefix_caching, true,
          "reuse the KV blocks of shared prompt prefixes (whole blocks; output is the same either way)");
ABSL_FLAG(float, moe_capacity_factor, 0.0f, "expert capacity factor; 0 = dropless");
ABSL_FLAG(int, expert_cache_slots, 0, "hot-expert cache: resident routed experts in total; 0 = all resident");
ABSL_FLAG(int64_t, expert_cache_bytes, 0, "hot-expert cache: device-tier bytes for expert weights; 0 = unset");
ABSL_FLAG(double, expert_cache_fraction, 0.0, "hot-expert cache: share (0, 1] of the routed experts resident; 0 = unset");
ABSL_FLAG(std::string, expert_cache_policy, "lru", "hot-expert cache eviction policy: lru | lfu | load-aware");
ABSL_FLAG(bool, expert_cache_prefetch, true, "hot-expert cache: prefetch the next layer's predicted experts");
ABSL_FLAG(std::string, metrics_per_expert, "auto", "auto | on | off (auto: while layers x experts <= 4096)");
ABSL_FLAG(absl::Duration, shutdown_timeout, absl::Seconds(30), "how long in-flight streams may finish after SIGTERM");
ABSL_FLAG(int, max_tokens_limit, 0, "largest max_tokens a request may ask for; 0 = the context length");
ABSL_FLAG(int, default_max_tokens, 16, "max_tokens when a request leaves it unset");
ABSL_FLAG(int, max_stop_strings, 8, "stop strings per request");
ABSL_FLAG(int, max_stop_length, 64, "bytes per stop string");
ABSL_FLAG(int, max_logprobs, 20, "largest sampling.logprobs a request may ask for");
ABSL_FLAG(int64_t, max_prompt_bytes, 1 << 20, "largest prompt text in bytes");
ABSL_FLAG(int, max_receive_message_bytes, 4 << 20, "largest gRPC message the server accepts");

namespace moed::server {
namespace {

// Every flag above, in help order.
constexpr const char* kFlagNames[] = {
    "model", "tokenizer", "host", "port", "metrics_port", "backend", "threads", "max_running_seqs", "max_batch_tokens",
    "max_queue", "max_model_len", "kv_block_size", "kv_cache_bytes", "enable_prefix_caching", "moe_capacity_factor",
    "expert_cache_slots", "expert_cache_bytes", "expert_cache_fraction", "expert_cache_policy", "expert_cache_prefetch",
    "metrics_per_expert", "shutdown_timeout", "max_tokens_limit", "default_max_tokens", "max_stop_strings",
    "max_stop_length", "max_logprobs", "max_prompt_bytes", "max_receive_message_bytes"};

bool IsOurFlag(absl::string_view name) {
  for (const char* n : kFlagNames) {
    if (name == n) return true;
  }
  return false;
}

std::string Dashed(absl::string_view name) { return absl::StrReplaceAll(name, {{"_", "-"}}); }

absl::Status SetFlag(absl::string_view name, absl::string_view value, absl::string_view origin) {
  absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
  if (flag == nullptr || !IsOurFlag(name)) {
    return absl::InvalidArgumentError(absl::StrCat("unknown flag --", Dashed(name), " (see --help)"));
  }
  std::string error;
  if (!flag->ParseFrom(value, &error)) {
    return absl::InvalidArgumentError(absl::StrCat(origin, ": invalid value '", value, "': ", error));
  }
  return absl::OkStatus();
}

absl::StatusOr<PerExpertMetrics> ParsePerExpert(const std::string& v) {
  if (v == "auto") return PerExpertMetrics::kAuto;
  if (v == "on") return PerExpertMetrics::kOn;
  if (v == "off") return PerExpertMetrics::kOff;
  return absl::InvalidArgumentError(
      absl::StrCat("--metrics-per-expert must be auto, on or off, got '", v, "'"));
}

absl::Status RequireAtLeast(absl::string_view flag, int64_t value, int64_t min) {
  if (value >= min) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("--", flag, " must be >= ", min, ", got ", value));
}

absl::Status CheckPort(absl::string_view flag, int port) {
  if (port >= 0 && port <= 65535) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("--", flag, " must be in [0, 65535], got ", port));
}

}  // namespace

EnvLookup ProcessEnv() {
  return [](absl::string_view name) -> std::optional<std::string> {
    const char* v = std::getenv(std::string(name).c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
}

std::string EnvVarForFlag(absl::string_view flag_name) {
  return absl::StrCat("MOED_", absl::AsciiStrToUpper(absl::StrReplaceAll(flag_name, {{"-", "_"}})));
}

absl::StatusOr<ServerConfig> ParseServerFlags(int argc, char** argv, const EnvLookup& env) {
  // Environment first: it becomes the default the command line may override.
  for (const char* name : kFlagNames) {
    const std::string var = EnvVarForFlag(name);
    std::optional<std::string> value = env(var);
    if (!value.has_value()) continue;
    MOED_RETURN_IF_ERROR(SetFlag(name, *value, var));
  }
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg.size() < 3 || arg.substr(0, 2) != "--") {
      return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", arg, "' (flags are --name=value)"));
    }
    arg.remove_prefix(2);
    std::string name;
    std::string value;
    const size_t eq = arg.find('=');
    if (eq != absl::string_view::npos) {
      name = std::string(arg.substr(0, eq));
      value = std::string(arg.substr(eq + 1));
    } else {
      name = std::string(arg);
      if (i + 1 >= argc) return absl::InvalidArgumentError(absl::StrCat("flag --", name, " needs a value"));
      value = argv[++i];
    }
    name = absl::StrReplaceAll(name, {{"-", "_"}});
    MOED_RETURN_IF_ERROR(SetFlag(name, value, absl::StrCat("--", Dashed(name))));
  }

  ServerConfig c;
  c.model = absl::GetFlag(FLAGS_model);
  c.host = absl::GetFlag(FLAGS_host);
  c.port = absl::GetFlag(FLAGS_port);
  c.metrics_port = absl::GetFlag(FLAGS_metrics_port);
  c.backend = absl::GetFlag(FLAGS_backend);
  c.tokenizer = absl::GetFlag(FLAGS_tokenizer);
  c.threads = absl::GetFlag(FLAGS_threads);
  c.max_running_seqs = absl::GetFlag(FLAGS_max_running_seqs);
  c.max_batch_tokens = absl::GetFlag(FLAGS_max_batch_tokens);
  c.max_queue = absl::GetFlag(FLAGS_max_queue);
  c.max_model_len = absl::GetFlag(FLAGS_max_model_len);
  c.kv_block_size = absl::GetFlag(FLAGS_kv_block_size);
  c.kv_cache_bytes = absl::GetFlag(FLAGS_kv_cache_bytes);
  c.enable_prefix_caching = absl::GetFlag(FLAGS_enable_prefix_caching);
  c.moe_capacity_factor = absl::GetFlag(FLAGS_moe_capacity_factor);
  c.expert_cache_slots = absl::GetFlag(FLAGS_expert_cache_slots);
  c.expert_cache_bytes = absl::GetFlag(FLAGS_expert_cache_bytes);
  c.expert_cache_fraction = absl::GetFlag(FLAGS_expert_cache_fraction);
  c.expert_cache_policy = absl::GetFlag(FLAGS_expert_cache_policy);
  c.expert_cache_prefetch = absl::GetFlag(FLAGS_expert_cache_prefetch);
  MOED_ASSIGN_OR_RETURN(c.metrics_per_expert, ParsePerExpert(absl::GetFlag(FLAGS_metrics_per_expert)));
  c.shutdown_timeout = absl::GetFlag(FLAGS_shutdown_timeout);
  c.max_tokens_limit = absl::GetFlag(FLAGS_max_tokens_limit);
  c.default_max_tokens = absl::GetFlag(FLAGS_default_max_tokens);
  c.max_stop_strings = absl::GetFlag(FLAGS_max_stop_strings);
  c.max_stop_length = absl::GetFlag(FLAGS_max_stop_length);
  c.max_logprobs = absl::GetFlag(FLAGS_max_logprobs);
  c.max_prompt_bytes = absl::GetFlag(FLAGS_max_prompt_bytes);
  c.max_receive_message_bytes = absl::GetFlag(FLAGS_max_receive_message_bytes);
  MOED_RETURN_IF_ERROR(ValidateServerConfig(c));
  return c;
}

absl::Status ValidateServerConfig(const ServerConfig& c) {
  if (c.model.empty()) return absl::InvalidArgumentError("--model is empty");
  if (c.host.empty()) return absl::InvalidArgumentError("--host is empty");
  if (c.backend != "auto" && c.backend != "cpu" && c.backend != "cuda") {
    return absl::InvalidArgumentError(absl::StrCat("--backend must be auto, cpu or cuda, got '", c.backend, "'"));
  }
  MOED_RETURN_IF_ERROR(CheckPort("port", c.port));
  MOED_RETURN_IF_ERROR(CheckPort("metrics-port", c.metrics_port));
  MOED_RETURN_IF_ERROR(RequireAtLeast("threads", c.threads, 0));
  MOED_RETURN_IF_ERROR(RequireAtLeast("max-running-seqs", c.max_running_seqs, 1));
  MOED_RETURN_IF_ERROR(RequireAtLeast("max-batch-tokens", c.max_batch_tokens, 1));
  MOED_RETURN_IF_ERROR(RequireAtLeast("max-queue", c.max_queue, 1));
  MOED_RETURN_IF_ERROR(RequireAtLeast("max-model-len", c.max_model_len, 0));
  MOED_RETURN_IF_ERROR(RequireAtLeast("kv-block-size", c.kv_block_size, 1));
  MOED_RETURN_IF_ERROR(RequireAtLeast("kv-cache-bytes", c.kv_cache_bytes, 0));
  if (!(c.moe_capacity_factor >= 0.0f) || c.moe_capacity_factor > 1e6f) {
    return absl::InvalidArgumentError(
        absl::StrCat("--moe-capacity-factor must be >= 0 (0 = dropless), got ", c.moe_capacity_factor));
  }
  MOED_RETURN_IF_ERROR(RequireAtLeast("expert-cache-slots", c.expert_cache_slots, 0));
  MOED_RETURN_IF_ERROR(RequireAtLeast("expert-cache-bytes", c.expert_cache_bytes, 0));
  if (!(c.expert_cache_fraction >= 0.0 && c.expert_cache_fraction <= 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--expert-cache-fraction must be in [0, 1] (0 = unset), got ", c.expert_cache_fraction));
  }
  if ((c.expert_cache_slots > 0) + (c.expert_cache_bytes > 0) + (c.expert_cache_fraction > 0) > 1) {
    return absl::InvalidArgumentError(
        "set at most one of --expert-cache-slots, --expert-cache-bytes and --expert-cache-fraction");
  }
  if (!cache::IsCachePolicyName(c.expert_cache_policy)) {
    return absl::InvalidArgumentError(absl::StrCat("--expert-cache-policy must be lru, lfu or load-aware, got '",
                                                   c.expert_cache_policy, "'"));
  }
  if (c.shutdown_timeout < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--shutdown-timeout must be >= 0, got ", absl::FormatDuration(c.shutdown_timeout)));
  }
  MOED_RETURN_IF_ERROR(RequireAtLeast("max-tokens-limit", c.max_tokens_limit, 0));
  MOED_RETURN_IF_ERROR(RequireAtLeast("default-max-tokens", c.default_max_tokens, 1));
  MOED_RETURN_IF_ERROR(RequireAtLeast("max-stop-strings", c.max_stop_strings, 0));
  MOED_RETURN_IF_ERROR(RequireAtLeast("max-stop-length", c.max_stop_length, 1));
  MOED_RETURN_IF_ERROR(RequireAtLeast("max-logprobs", c.max_logprobs, 0));
  MOED_RETURN_IF_ERROR(RequireAtLeast("max-prompt-bytes", c.max_prompt_bytes, 1));
  MOED_RETURN_IF_ERROR(RequireAtLeast("max-receive-message-bytes", c.max_receive_message_bytes, 1024));
  return absl::OkStatus();
}

std::string UsageText() {
  std::string out = "usage: moed [--flag=value ...]; every flag may also be set as MOED_<FLAG> in the environment\n";
  for (const char* name : kFlagNames) {
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    if (flag == nullptr) continue;
    absl::StrAppend(&out, "  --", Dashed(name), " (", EnvVarForFlag(name), ", default ", flag->DefaultValue(),
                    ")\n      ", flag->Help(), "\n");
  }
  return out;
}

}  // namespace moed::server
