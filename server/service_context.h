// ServiceContext: what the RPC handlers share — the request queue, metrics, tokenizer and limits.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "engine/moe/routing_trace.h"
#include "engine/tokenizer/tokenizer.h"
#include "server/config.h"
#include "server/metrics.h"
#include "server/request_queue.h"
#include "server/request_validator.h"

namespace moed::server {

// Owned by MoedServer; outlives every RPC. Members are immutable after start except the atomics.
struct ServiceContext {
  ServerConfig config;
  RequestQueue* queue = nullptr;
  ServerMetrics* metrics = nullptr;
  std::shared_ptr<const Tokenizer> tokenizer;
  RequestLimits limits;
  RoutingTrace* routing_trace = nullptr;   // thread-safe; owned by MoedServer
  std::atomic<uint64_t> next_request = 0;  // engine request ids: "r<N>", unique for the process
  uint64_t seed_base = 0;                  // server-chosen seeds: seed_base + request number
};

}  // namespace moed::server
