// The daemon's absl flags, the MOED_* environment fallback, and the checks on their values.
#include "server/flags.h"

#include <algorithm>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/cli/command_line.h"
#include "engine/cache/cache_policy.h"
#include "engine/common/status_macros.h"
#include "server/log.h"

namespace {
// The one place defaults live: ServerConfig's member initializers.
const moed::server::ServerConfig kDefaults;
}  // namespace

ABSL_FLAG(std::string, model, kDefaults.model,
          "model directory, or synthetic:<name>[-small] (random weights at a published shape); "
          "empty = the built-in fortune-moe next to the binary");
ABSL_FLAG(std::string, tokenizer, kDefaults.tokenizer,
          "tokenizer directory instead of the model's (a synthetic model has none)");
ABSL_FLAG(std::string, host, kDefaults.host, "address the gRPC server binds");
ABSL_FLAG(int, port, kDefaults.port, "gRPC port; 0 = pick a free one");
ABSL_FLAG(std::string, metrics_host, kDefaults.metrics_host, "address the /metrics endpoint binds; empty = --host");
ABSL_FLAG(int, metrics_port, kDefaults.metrics_port, "Prometheus /metrics port; 0 = pick a free one");
ABSL_FLAG(int, health_port, kDefaults.health_port,
          "also serve grpc.health.v1 alone, in plaintext, on --metrics-host:PORT (probes of a TLS server); "
          "0 = off, -1 = a free port");
ABSL_FLAG(int, http_port, kDefaults.http_port,
          "OpenAI-compatible HTTP API port (/v1/completions, /v1/chat/completions, /v1/models, /health); "
          "0 = off, -1 = a free one");
ABSL_FLAG(std::string, http_host, kDefaults.http_host, "address the OpenAI HTTP API binds; empty = --host");
ABSL_FLAG(int, http_max_connections, kDefaults.http_max_connections,
          "open connections the OpenAI HTTP API holds at most; a connection over it is closed as it is accepted");
ABSL_FLAG(std::string, chat_template, kDefaults.chat_template,
          "Jinja chat template file for /v1/chat/completions instead of the model's tokenizer_config.json one");
ABSL_FLAG(bool, enable_reflection, kDefaults.enable_reflection, "serve gRPC server reflection (for grpcurl)");
ABSL_FLAG(std::string, tls_cert, kDefaults.tls_cert, "PEM certificate chain of the gRPC server; with --tls-key: TLS");
ABSL_FLAG(std::string, tls_key, kDefaults.tls_key, "PEM private key of --tls-cert");
ABSL_FLAG(std::string, tls_client_ca, kDefaults.tls_client_ca,
          "PEM CA bundle: clients must present a certificate it signed (mTLS)");
ABSL_FLAG(std::string, auth_token_file, kDefaults.auth_token_file,
          "bearer tokens, one per line ('<token>' or '<token> admin'); requests need 'authorization: Bearer <token>'; "
          "priority < 0 needs an admin token");
ABSL_FLAG(std::string, backend, kDefaults.backend, "auto | cpu | cuda");
ABSL_FLAG(int, threads, kDefaults.threads, "CPU backend worker threads; 0 = all hardware threads");
ABSL_FLAG(std::string, cpu_kernels, kDefaults.cpu_kernels,
          "CPU backend kernels: fast (weights in the checkpoint's dtype, SIMD picked at run time, routed experts' "
          "inputs rounded to bf16 as llama.cpp does) | fast-fp32 (fast with fp32 activations) | reference (fp32)");
ABSL_FLAG(int, max_running_seqs, kDefaults.max_running_seqs, "sequences in the running batch");
ABSL_FLAG(int, max_batch_tokens, kDefaults.max_batch_tokens, "tokens per engine step (prefill chunks + decode tokens)");
ABSL_FLAG(int, max_queue, kDefaults.max_queue,
          "requests waiting for the batch; more are refused with RESOURCE_EXHAUSTED");
ABSL_FLAG(int, max_model_len, kDefaults.max_model_len, "context limit in tokens; 0 = the model's");
ABSL_FLAG(int, kv_block_size, kDefaults.kv_block_size, "tokens per KV-cache block");
ABSL_FLAG(int64_t, kv_cache_bytes, kDefaults.kv_cache_bytes,
          "KV-cache memory in bytes; 0 = enough for max-running-seqs full contexts");
ABSL_FLAG(bool, enable_prefix_caching, kDefaults.enable_prefix_caching,
          "reuse the KV blocks of shared prompt prefixes (whole blocks; output is the same either way)");
ABSL_FLAG(float, moe_capacity_factor, kDefaults.moe_capacity_factor, "expert capacity factor; 0 = dropless");
ABSL_FLAG(int, expert_cache_slots, kDefaults.expert_cache_slots,
          "hot-expert cache: resident routed experts in total; 0 = all resident");
ABSL_FLAG(int64_t, expert_cache_bytes, kDefaults.expert_cache_bytes,
          "hot-expert cache: device-tier bytes for expert weights; 0 = unset");
ABSL_FLAG(double, expert_cache_fraction, kDefaults.expert_cache_fraction,
          "hot-expert cache: share (0, 1] of the routed experts resident; 0 = unset");
ABSL_FLAG(std::string, expert_cache_policy, kDefaults.expert_cache_policy,
          "hot-expert cache eviction policy: lru | lfu | load-aware");
ABSL_FLAG(bool, expert_cache_prefetch, kDefaults.expert_cache_prefetch,
          "hot-expert cache: prefetch the next layer's predicted experts");
ABSL_FLAG(float, router_zipf, kDefaults.router_zipf,
          "benchmarks only (CUDA, expert cache on): impose a Zipf expert popularity of this exponent on the routers "
          "(a logit bias; changes the output); 0 = off");
ABSL_FLAG(int, synthetic_layers, kDefaults.synthetic_layers,
          "benchmarks only: a synthetic model keeps only its first N layers (per-layer shapes unchanged); 0 = all");
ABSL_FLAG(std::string, cuda_moe, kDefaults.cuda_moe,
          "CUDA MoE layer: grouped (device-side, no host sync) | per-expert (cuBLAS per expert, the reference)");
ABSL_FLAG(bool, cuda_graphs, kDefaults.cuda_graphs, "CUDA: replay decode steps as CUDA graphs, one per batch size");
ABSL_FLAG(std::string, cuda_attention, kDefaults.cuda_attention,
          "CUDA attention: flash (split-context decode) | simple (one CTA per token and head, the reference)");
ABSL_FLAG(std::string, cuda_sampling, kDefaults.cuda_sampling,
          "CUDA sampling: radix (radix select, 8 passes) | bisect (bisection on the key, the reference)");
ABSL_FLAG(std::string, metrics_per_expert, "auto", "auto | on | off (auto: while layers x experts <= 4096)");
ABSL_FLAG(absl::Duration, shutdown_timeout, kDefaults.shutdown_timeout,
          "how long in-flight streams may finish after SIGTERM");
ABSL_FLAG(absl::Duration, min_step_time, kDefaults.min_step_time,
          "each engine step takes at least this long; 0 = as fast as it can (a cap on the step rate)");
ABSL_FLAG(int, max_tokens_limit, kDefaults.max_tokens_limit,
          "largest max_tokens a request may ask for; 0 = the context length");
ABSL_FLAG(int, default_max_tokens, kDefaults.default_max_tokens, "max_tokens when a request leaves it unset");
ABSL_FLAG(int, max_stop_strings, kDefaults.max_stop_strings, "stop strings per request");
ABSL_FLAG(int, max_stop_length, kDefaults.max_stop_length, "bytes per stop string");
ABSL_FLAG(int, max_logprobs, kDefaults.max_logprobs, "largest sampling.logprobs a request may ask for");
ABSL_FLAG(int64_t, max_prompt_bytes, kDefaults.max_prompt_bytes,
          "largest prompt text in bytes; 0 = what the context can hold (context x the longest token's bytes)");
ABSL_FLAG(int, max_receive_message_bytes, kDefaults.max_receive_message_bytes,
          "largest gRPC message the server accepts");
ABSL_FLAG(int, tokenizer_threads, kDefaults.tokenizer_threads, "threads that tokenize prompts (never gRPC's threads)");
ABSL_FLAG(int, tokenizer_queue, kDefaults.tokenizer_queue,
          "prompts waiting for a tokenizer thread; more are refused with RESOURCE_EXHAUSTED");
ABSL_FLAG(int64_t, stream_buffer_bytes, kDefaults.stream_buffer_bytes,
          "output bytes that may wait for one slow client; more cut the stream with RESOURCE_EXHAUSTED");
ABSL_FLAG(absl::Duration, stream_stall_timeout, kDefaults.stream_stall_timeout,
          "a stream whose client has not read for this long is cut with RESOURCE_EXHAUSTED");
ABSL_FLAG(std::string, log_format, kDefaults.log_format, "text | json");
ABSL_FLAG(int, grpc_max_streams_per_connection, kDefaults.grpc_max_streams_per_connection,
          "concurrent gRPC calls on one connection");
ABSL_FLAG(absl::Duration, grpc_handshake_timeout, kDefaults.grpc_handshake_timeout,
          "close connections not set up within this");
ABSL_FLAG(absl::Duration, grpc_idle_timeout, kDefaults.grpc_idle_timeout,
          "close connections without calls for this long");
ABSL_FLAG(absl::Duration, grpc_keepalive_time, kDefaults.grpc_keepalive_time, "ping quiet connections this often");
ABSL_FLAG(absl::Duration, grpc_min_client_ping_interval, kDefaults.grpc_min_client_ping_interval,
          "clients pinging more often than this are disconnected (keepalive enforcement)");
ABSL_FLAG(int64_t, grpc_memory_bytes, kDefaults.grpc_memory_bytes, "memory gRPC may use for all connections and calls");
ABSL_FLAG(std::string, routing_trace, kDefaults.routing_trace,
          "write sampled per-token routing to this file (gzip JSON lines); empty = off");
ABSL_FLAG(double, routing_trace_sample, kDefaults.routing_trace_sample,
          "share (0, 1] of requests the routing trace records");

namespace moed::server {
namespace {

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

const cli::Program& MoedProgram() {
  static const cli::Program* program = new cli::Program{
      "moed",
      "usage: moed [--flag=value ...]; every flag may also be set as MOED_<FLAG> in the environment\n",
      {"server/flags.cc"},
      "MOED_",
      false};
  return *program;
}

std::string EnvVarForFlag(absl::string_view flag_name) { return cli::EnvVarFor("MOED_", flag_name); }

absl::StatusOr<ServerConfig> ParseServerFlags(int argc, char** argv, const EnvLookup& env) {
  MOED_RETURN_IF_ERROR(cli::ParseCommandLine(MoedProgram(), argc, argv, env).status());
  return ServerConfigFromFlags();
}

absl::StatusOr<ServerConfig> ServerConfigFromFlags() {
  ServerConfig c;
  c.model = absl::GetFlag(FLAGS_model);
  c.host = absl::GetFlag(FLAGS_host);
  c.port = absl::GetFlag(FLAGS_port);
  c.metrics_host = absl::GetFlag(FLAGS_metrics_host);
  c.metrics_port = absl::GetFlag(FLAGS_metrics_port);
  c.health_port = absl::GetFlag(FLAGS_health_port);
  c.enable_reflection = absl::GetFlag(FLAGS_enable_reflection);
  c.http_port = absl::GetFlag(FLAGS_http_port);
  c.http_host = absl::GetFlag(FLAGS_http_host);
  c.http_max_connections = absl::GetFlag(FLAGS_http_max_connections);
  c.chat_template = absl::GetFlag(FLAGS_chat_template);
  c.tls_cert = absl::GetFlag(FLAGS_tls_cert);
  c.tls_key = absl::GetFlag(FLAGS_tls_key);
  c.tls_client_ca = absl::GetFlag(FLAGS_tls_client_ca);
  c.auth_token_file = absl::GetFlag(FLAGS_auth_token_file);
  c.backend = absl::GetFlag(FLAGS_backend);
  c.tokenizer = absl::GetFlag(FLAGS_tokenizer);
  c.threads = absl::GetFlag(FLAGS_threads);
  c.cpu_kernels = absl::GetFlag(FLAGS_cpu_kernels);
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
  c.router_zipf = absl::GetFlag(FLAGS_router_zipf);
  c.synthetic_layers = absl::GetFlag(FLAGS_synthetic_layers);
  c.cuda_moe = absl::GetFlag(FLAGS_cuda_moe);
  c.cuda_graphs = absl::GetFlag(FLAGS_cuda_graphs);
  c.cuda_attention = absl::GetFlag(FLAGS_cuda_attention);
  c.cuda_sampling = absl::GetFlag(FLAGS_cuda_sampling);
  MOED_ASSIGN_OR_RETURN(c.metrics_per_expert, ParsePerExpert(absl::GetFlag(FLAGS_metrics_per_expert)));
  c.shutdown_timeout = absl::GetFlag(FLAGS_shutdown_timeout);
  c.min_step_time = absl::GetFlag(FLAGS_min_step_time);
  c.max_tokens_limit = absl::GetFlag(FLAGS_max_tokens_limit);
  c.default_max_tokens = absl::GetFlag(FLAGS_default_max_tokens);
  c.max_stop_strings = absl::GetFlag(FLAGS_max_stop_strings);
  c.max_stop_length = absl::GetFlag(FLAGS_max_stop_length);
  c.max_logprobs = absl::GetFlag(FLAGS_max_logprobs);
  c.max_prompt_bytes = absl::GetFlag(FLAGS_max_prompt_bytes);
  c.max_receive_message_bytes = absl::GetFlag(FLAGS_max_receive_message_bytes);
  c.tokenizer_threads = absl::GetFlag(FLAGS_tokenizer_threads);
  c.tokenizer_queue = absl::GetFlag(FLAGS_tokenizer_queue);
  c.stream_buffer_bytes = absl::GetFlag(FLAGS_stream_buffer_bytes);
  c.stream_stall_timeout = absl::GetFlag(FLAGS_stream_stall_timeout);
  c.log_format = absl::GetFlag(FLAGS_log_format);
  c.grpc_max_streams_per_connection = absl::GetFlag(FLAGS_grpc_max_streams_per_connection);
  c.grpc_handshake_timeout = absl::GetFlag(FLAGS_grpc_handshake_timeout);
  c.grpc_idle_timeout = absl::GetFlag(FLAGS_grpc_idle_timeout);
  c.grpc_keepalive_time = absl::GetFlag(FLAGS_grpc_keepalive_time);
  c.grpc_min_client_ping_interval = absl::GetFlag(FLAGS_grpc_min_client_ping_interval);
  c.grpc_memory_bytes = absl::GetFlag(FLAGS_grpc_memory_bytes);
  c.routing_trace = absl::GetFlag(FLAGS_routing_trace);
  c.routing_trace_sample = absl::GetFlag(FLAGS_routing_trace_sample);
  MOED_RETURN_IF_ERROR(ValidateServerConfig(c));
  return c;
}

absl::Status ValidateServerConfig(const ServerConfig& c) {
  if (c.host.empty()) return absl::InvalidArgumentError("--host is empty");
  if (c.backend != "auto" && c.backend != "cpu" && c.backend != "cuda") {
    return absl::InvalidArgumentError(absl::StrCat("--backend must be auto, cpu or cuda, got '", c.backend, "'"));
  }
  if (c.tls_cert.empty() != c.tls_key.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key go together: set both or neither");
  }
  if (!c.tls_client_ca.empty() && c.tls_cert.empty()) {
    return absl::InvalidArgumentError("--tls-client-ca needs --tls-cert and --tls-key (mTLS is TLS)");
  }
  MOED_RETURN_IF_ERROR(CheckPort("port", c.port));
  MOED_RETURN_IF_ERROR(CheckPort("metrics-port", c.metrics_port));
  if (c.health_port != -1) MOED_RETURN_IF_ERROR(CheckPort("health-port", c.health_port));
  if (c.http_port != -1) MOED_RETURN_IF_ERROR(CheckPort("http-port", c.http_port));
  MOED_RETURN_IF_ERROR(RequireAtLeast("threads", c.threads, 0));
  if (c.cpu_kernels != "fast" && c.cpu_kernels != "fast-fp32" && c.cpu_kernels != "reference") {
    return absl::InvalidArgumentError(
        absl::StrCat("--cpu-kernels must be fast, fast-fp32 or reference, got '", c.cpu_kernels, "'"));
  }
  MOED_RETURN_IF_ERROR(RequireAtLeast("max-running-seqs", c.max_running_seqs, 1));
  MOED_RETURN_IF_ERROR(RequireAtLeast("max-batch-tokens", c.max_batch_tokens, 1));
  MOED_RETURN_IF_ERROR(RequireAtLeast("max-queue", c.max_queue, 1));
  MOED_RETURN_IF_ERROR(RequireAtLeast("http-max-connections", c.http_max_connections, 1));
  MOED_RETURN_IF_ERROR(RequireAtLeast("max-model-len", c.max_model_len, 0));
  MOED_RETURN_IF_ERROR(RequireAtLeast("kv-block-size", c.kv_block_size, 1));
  MOED_RETURN_IF_ERROR(RequireAtLeast("kv-cache-bytes", c.kv_cache_bytes, 0));
  if (!(c.moe_capacity_factor >= 0.0f) || c.moe_capacity_factor > 1e6f) {
    return absl::InvalidArgumentError(
        absl::StrCat("--moe-capacity-factor must be >= 0 (0 = dropless), got ", c.moe_capacity_factor));
  }
  if (!(c.routing_trace_sample > 0.0 && c.routing_trace_sample <= 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--routing-trace-sample must be in (0, 1], got ", c.routing_trace_sample));
  }
  MOED_RETURN_IF_ERROR(RequireAtLeast("expert-cache-slots", c.expert_cache_slots, 0));
  MOED_RETURN_IF_ERROR(RequireAtLeast("expert-cache-bytes", c.expert_cache_bytes, 0));
  MOED_RETURN_IF_ERROR(RequireAtLeast("synthetic-layers", c.synthetic_layers, 0));
  if (!(c.expert_cache_fraction >= 0.0 && c.expert_cache_fraction <= 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--expert-cache-fraction must be in [0, 1] (0 = unset), got ", c.expert_cache_fraction));
  }
  if ((c.expert_cache_slots > 0) + (c.expert_cache_bytes > 0) + (c.expert_cache_fraction > 0) > 1) {
    return absl::InvalidArgumentError(
        "set at most one of --expert-cache-slots, --expert-cache-bytes and --expert-cache-fraction");
  }
  if (c.cuda_moe != "grouped" && c.cuda_moe != "per-expert") {
    return absl::InvalidArgumentError(absl::StrCat("--cuda-moe must be grouped or per-expert, got '", c.cuda_moe, "'"));
  }
  if (c.cuda_attention != "flash" && c.cuda_attention != "simple") {
    return absl::InvalidArgumentError(
        absl::StrCat("--cuda-attention must be flash or simple, got '", c.cuda_attention, "'"));
  }
  if (c.cuda_sampling != "radix" && c.cuda_sampling != "bisect") {
    return absl::InvalidArgumentError(
        absl::StrCat("--cuda-sampling must be radix or bisect, got '", c.cuda_sampling, "'"));
  }
  if (!cache::IsCachePolicyName(c.expert_cache_policy)) {
    return absl::InvalidArgumentError(absl::StrCat("--expert-cache-policy must be lru, lfu or load-aware, got '",
                                                   c.expert_cache_policy, "'"));
  }
  if (c.shutdown_timeout < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--shutdown-timeout must be >= 0, got ", absl::FormatDuration(c.shutdown_timeout)));
  }
  if (c.min_step_time < absl::ZeroDuration() || c.min_step_time > absl::Seconds(10)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--min-step-time must be in [0, 10s], got ", absl::FormatDuration(c.min_step_time)));
  }
  MOED_RETURN_IF_ERROR(RequireAtLeast("max-tokens-limit", c.max_tokens_limit, 0));
  MOED_RETURN_IF_ERROR(RequireAtLeast("default-max-tokens", c.default_max_tokens, 1));
  MOED_RETURN_IF_ERROR(RequireAtLeast("max-stop-strings", c.max_stop_strings, 0));
  MOED_RETURN_IF_ERROR(RequireAtLeast("max-stop-length", c.max_stop_length, 1));
  MOED_RETURN_IF_ERROR(RequireAtLeast("max-logprobs", c.max_logprobs, 0));
  MOED_RETURN_IF_ERROR(RequireAtLeast("max-prompt-bytes", c.max_prompt_bytes, 0));
  MOED_RETURN_IF_ERROR(RequireAtLeast("max-receive-message-bytes", c.max_receive_message_bytes, 1024));
  MOED_RETURN_IF_ERROR(RequireAtLeast("tokenizer-threads", c.tokenizer_threads, 1));
  MOED_RETURN_IF_ERROR(RequireAtLeast("tokenizer-queue", c.tokenizer_queue, 1));
  MOED_RETURN_IF_ERROR(RequireAtLeast("stream-buffer-bytes", c.stream_buffer_bytes, 1024));
  if (c.stream_stall_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("--stream-stall-timeout must be > 0, got ",
                                                   absl::FormatDuration(c.stream_stall_timeout)));
  }
  MOED_RETURN_IF_ERROR(ParseLogFormat(c.log_format).status());
  MOED_RETURN_IF_ERROR(RequireAtLeast("grpc-max-streams-per-connection", c.grpc_max_streams_per_connection, 1));
  MOED_RETURN_IF_ERROR(RequireAtLeast("grpc-memory-bytes", c.grpc_memory_bytes, int64_t{16} << 20));
  for (auto [flag, d] : {std::pair{"grpc-handshake-timeout", c.grpc_handshake_timeout},
                         std::pair{"grpc-idle-timeout", c.grpc_idle_timeout},
                         std::pair{"grpc-keepalive-time", c.grpc_keepalive_time},
                         std::pair{"grpc-min-client-ping-interval", c.grpc_min_client_ping_interval}}) {
    if (d < absl::Milliseconds(1) || d > absl::Hours(24 * 24)) {
      return absl::InvalidArgumentError(absl::StrCat("--", flag, " must be in [1ms, 24 days], got ",
                                                     absl::FormatDuration(d)));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> FindBuiltInModel() {
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return absl::NotFoundError("--model is not set and the executable's path is unknown");
  const std::filesystem::path dir = exe.parent_path();
  std::string looked;
  for (const std::filesystem::path& candidate :
       {dir / "models" / "fortune-moe", dir / ".." / "models" / "fortune-moe",
        dir / ".." / "share" / "moed" / "models" / "fortune-moe"}) {
    if (std::filesystem::exists(candidate / "config.json", ec)) {
      return std::filesystem::weakly_canonical(candidate, ec).string();
    }
    absl::StrAppend(&looked, looked.empty() ? "" : ", ", candidate.lexically_normal().string());
  }
  return absl::NotFoundError(absl::StrCat("--model is not set and the built-in model is not next to the binary "
                                          "(looked in ", looked, ")"));
}

std::string UsageText() { return cli::UsageText(MoedProgram()); }

}  // namespace moed::server
