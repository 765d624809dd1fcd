// ServerConfig: every setting of the daemon, resolved from flags and MOED_* environment variables.
#pragma once

#include <cstdint>
#include <string>

#include "absl/time/time.h"

namespace moed::server {

enum class PerExpertMetrics { kAuto, kOn, kOff };

struct ServerConfig {
  // Model and backend.
  std::string model = "models/fortune-moe";  // model directory (or synthetic:<name>), passed to LoadModel
  std::string backend = "auto";              // auto | cpu | cuda
  std::string tokenizer;                     // tokenizer directory instead of the model's; empty = the model's own
  int threads = 0;                           // CPU worker threads; 0 = all hardware threads

  // Network.
  std::string host = "0.0.0.0";
  int port = 50051;          // 0 = pick a free port (printed on start)
  int metrics_port = 9400;   // 0 = pick a free port (printed on start)

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

  // Metrics and lifecycle.
  PerExpertMetrics metrics_per_expert = PerExpertMetrics::kAuto;
  absl::Duration shutdown_timeout = absl::Seconds(30);

  // Request limits (validated per request).
  int max_tokens_limit = 0;    // 0 = the context length
  int default_max_tokens = 16;
  int max_stop_strings = 8;
  int max_stop_length = 64;    // bytes per stop string
  int max_logprobs = 20;
  int64_t max_prompt_bytes = 1 << 20;
  int max_receive_message_bytes = 4 << 20;
};

}  // namespace moed::server
