// ServerConfig: every setting of the daemon, resolved from flags and MOED_* environment variables.
#pragma once

#include <cstdint>
#include <string>

#include "absl/time/time.h"

namespace moed::server {

enum class PerExpertMetrics { kAuto, kOn, kOff };

struct ServerConfig {
  // Model and backend.
  std::string model;                         // model directory (or synthetic:<name>); empty = the built-in
                                             // fortune-moe found next to the binary (FindBuiltInModel)
  std::string backend = "auto";              // auto | cpu | cuda
  std::string tokenizer;                     // tokenizer directory instead of the model's; empty = the model's own
  int threads = 0;                           // CPU worker threads; 0 = all hardware threads
  std::string cpu_kernels = "fast";          // CPU backend kernels: fast | reference (BackendOptions::cpu_kernels)

  // Network.
  std::string host = "127.0.0.1";  // loopback unless told otherwise (deploy/ sets 0.0.0.0)
  int port = 50051;          // 0 = pick a free port (printed on start)
  std::string metrics_host;  // empty = --host
  int metrics_port = 9400;   // 0 = pick a free port (printed on start)
  int health_port = 0;       // > 0: grpc.health.v1 alone, plaintext, on the metrics host; -1 = a free port; 0 = off
  bool enable_reflection = false;
  int http_port = 0;         // > 0: the OpenAI-compatible HTTP API; -1 = a free port; 0 = off
  std::string http_host;     // empty = --host
  int http_max_connections = 1024;  // open HTTP connections on the OpenAI port; more are closed at accept
  std::string chat_template; // Jinja file for chat instead of the model's template; empty = the model's

  // Security of the front ends (health and /metrics are exempt).
  std::string tls_cert;         // PEM certificate chain; with tls_key: serve TLS
  std::string tls_key;          // PEM private key
  std::string tls_client_ca;    // PEM CA bundle: require and verify client certificates (mTLS)
  std::string auth_token_file;  // one bearer token per line ("<token> admin" may use priority < 0)

  // Engine (see EngineConfig).
  int max_running_seqs = 64;
  int max_batch_tokens = 512;
  int max_queue = 256;
  int max_model_len = 0;     // 0 = the model's context
  int kv_block_size = 16;
  int64_t kv_cache_bytes = 0;  // 0 = auto
  bool enable_prefix_caching = true;
  float moe_capacity_factor = 0.0f;  // 0 = dropless

  // Hot-expert cache (BackendOptions::expert_cache_*). At most one of slots / bytes / fraction is non-zero;
  // all zero = every expert resident.
  int expert_cache_slots = 0;            // resident routed experts in total
  int64_t expert_cache_bytes = 0;        // device-tier bytes for expert weights
  double expert_cache_fraction = 0.0;    // (0, 1]: that share of the model's routed experts, rounded up
  std::string expert_cache_policy = "lru";  // lru | lfu | load-aware
  bool expert_cache_prefetch = true;
  float router_zipf = 0.0f;   // benchmarks: BackendOptions::router_zipf
  int synthetic_layers = 0;   // benchmarks: ModelSourceOptions::synthetic_layers

  // CUDA backend paths (BackendOptions::cuda_*).
  std::string cuda_moe = "grouped";      // grouped | per-expert
  bool cuda_graphs = true;
  std::string cuda_attention = "flash";  // flash | simple
  std::string cuda_sampling = "radix";   // radix | bisect

  // Metrics and lifecycle.
  PerExpertMetrics metrics_per_expert = PerExpertMetrics::kAuto;
  absl::Duration shutdown_timeout = absl::Seconds(30);
  // Each engine step takes at least this long (0 = as fast as it can): a cap on the step rate, e.g. to share a
  // machine, or in tests to keep requests in the batch for a known minimum time on any machine.
  absl::Duration min_step_time = absl::ZeroDuration();

  // Request limits (validated per request).
  int max_tokens_limit = 0;    // 0 = the context length
  int default_max_tokens = 16;
  int max_stop_strings = 8;
  int max_stop_length = 64;    // bytes per stop string
  int max_logprobs = 20;
  int64_t max_prompt_bytes = 0;  // 0 = what the context can hold (PromptByteCap)
  int max_receive_message_bytes = 4 << 20;

  // Work before admission and back-pressure after it.
  int tokenizer_threads = 2;
  int tokenizer_queue = 64;                               // prompts waiting for a tokenizer thread
  int64_t stream_buffer_bytes = 1 << 20;                  // output waiting for one slow client
  absl::Duration stream_stall_timeout = absl::Seconds(30);

  std::string log_format = "text";  // text | json

  // gRPC transport (grpc_settings.cc).
  int grpc_max_streams_per_connection = 1000;
  absl::Duration grpc_handshake_timeout = absl::Seconds(10);
  absl::Duration grpc_idle_timeout = absl::Minutes(5);
  absl::Duration grpc_keepalive_time = absl::Minutes(1);
  absl::Duration grpc_min_client_ping_interval = absl::Seconds(10);
  int64_t grpc_memory_bytes = int64_t{1} << 30;
  // Routing trace (engine/moe/routing_trace.h): started at start-up when `routing_trace` is set; moectl trace
  // starts, stops and dumps it at run time.
  std::string routing_trace;          // file; empty = not at start-up
  double routing_trace_sample = 1.0;  // (0, 1]
};

}  // namespace moed::server
