// Start-up (flags → model → backend → engine → services → listen) and ordered shutdown.
#include "server/server.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <random>
#include <utility>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "engine/backend/backend.h"
#include "engine/common/status_macros.h"
#include "engine/model/model.h"
#include "engine/runtime/engine_core.h"
#include "engine/runtime/model_source.h"
#include "engine/tokenizer/tokenizer.h"

namespace moed::server {
namespace {

std::string ModelName(const std::string& model) {
  std::string_view m = model;
  while (m.size() > 1 && m.back() == '/') m.remove_suffix(1);
  const size_t slash = m.rfind('/');
  return std::string(slash == std::string_view::npos ? m : m.substr(slash + 1));
}

absl::Status Prefixed(const std::string& prefix, const absl::Status& s) {
  return absl::Status(s.code(), absl::StrCat(prefix, s.message()));
}

EngineConfig ToEngineConfig(const ServerConfig& c) {
  EngineConfig e;
  e.max_running_seqs = c.max_running_seqs;
  e.max_batch_tokens = c.max_batch_tokens;
  e.max_queue = c.max_queue;
  e.max_model_len = c.max_model_len;
  e.kv_block_size = c.kv_block_size;
  e.kv_cache_bytes = c.kv_cache_bytes;
  e.enable_prefix_caching = c.enable_prefix_caching;
  e.model_identity = c.model;
  return e;
}

RequestLimits ToLimits(const ServerConfig& c, const EngineInfo& info) {
  RequestLimits l;
  l.vocab_size = info.spec.vocab_size;
  l.context_length = info.config.max_model_len > 0 ? info.config.max_model_len : info.spec.max_position_embeddings;
  l.max_tokens_limit = c.max_tokens_limit > 0 ? std::min(c.max_tokens_limit, l.context_length) : l.context_length;
  l.default_max_tokens = c.default_max_tokens;
  l.max_stop_strings = c.max_stop_strings;
  l.max_stop_length = c.max_stop_length;
  l.max_logprobs = c.max_logprobs;
  l.max_prompt_bytes = c.max_prompt_bytes;
  return l;
}

// --expert-cache-slots, or --expert-cache-fraction of the model's routed experts (rounded up); 0 = unset.
int ExpertCacheSlots(const ServerConfig& c, const ModelSpec& spec) {
  if (c.expert_cache_slots > 0 || c.expert_cache_fraction <= 0) return c.expert_cache_slots;
  return std::max(1, static_cast<int>(std::ceil(c.expert_cache_fraction * spec.num_routed_experts() - 1e-9)));
}

}  // namespace

std::string JoinHostPort(const std::string& host, int port) {
  if (host.find(':') != std::string::npos && host.front() != '[') return absl::StrCat("[", host, "]:", port);
  return absl::StrCat(host, ":", port);
}

absl::StatusOr<std::unique_ptr<MoedServer>> MoedServer::Start(const ServerConfig& config) {
  std::unique_ptr<MoedServer> s(new MoedServer());
  s->config_ = config;
  s->model_name_ = ModelName(config.model);

  absl::StatusOr<std::string> backend_kind = ResolveBackendKind(config.backend);
  if (!backend_kind.ok()) return Prefixed(absl::StrCat("--backend ", config.backend, ": "), backend_kind.status());
  ModelSourceOptions source;
  source.backend = *backend_kind;
  source.tokenizer_dir = config.tokenizer;
  absl::StatusOr<OpenedModel> opened = OpenModel(config.model, source);
  if (!opened.ok()) return Prefixed(absl::StrCat("--model ", config.model, ": "), opened.status());
  const std::shared_ptr<const Model>* model = &opened->model;
  std::shared_ptr<const Tokenizer> shared_tokenizer = opened->tokenizer;

  BackendOptions backend_options;
  backend_options.moe_capacity_factor = config.moe_capacity_factor;
  backend_options.num_threads = config.threads;
  backend_options.expert_cache_slots = ExpertCacheSlots(config, (*model)->spec);
  backend_options.expert_cache_bytes = config.expert_cache_bytes;
  backend_options.expert_cache_policy = config.expert_cache_policy;
  backend_options.expert_cache_prefetch = config.expert_cache_prefetch;
  absl::StatusOr<std::unique_ptr<Backend>> backend = CreateBackend(*backend_kind, *model, backend_options);
  if (!backend.ok()) return Prefixed(absl::StrCat("--backend ", config.backend, ": "), backend.status());
  absl::StatusOr<std::unique_ptr<EngineCore>> engine =
      EngineCore::Create(*std::move(backend), shared_tokenizer, ToEngineConfig(config));
  if (!engine.ok()) return Prefixed(std::string("engine: "), engine.status());

  MetricsModelInfo metrics_info;
  metrics_info.model = s->model_name_;
  metrics_info.family = std::string(FamilyName((*engine)->spec().family));
  metrics_info.backend = std::string((*engine)->backend_name());
  metrics_info.num_layers = (*engine)->spec().num_layers;
  metrics_info.num_experts = (*engine)->spec().num_experts;
  metrics_info.routed_experts = (*engine)->spec().num_routed_experts();
  s->family_ = metrics_info.family;
  s->metrics_ = std::make_unique<ServerMetrics>(metrics_info, config.metrics_per_expert);
  MOED_ASSIGN_OR_RETURN(s->metrics_http_,
                        MetricsHttpServer::Start(config.host, config.metrics_port, s->metrics_->registry()));
  s->metrics_port_ = s->metrics_http_->port();

  s->queue_ = std::make_unique<RequestQueue>(*std::move(engine), s->metrics_.get());
  s->context_ = std::make_unique<ServiceContext>();
  s->context_->config = config;
  s->context_->queue = s->queue_.get();
  s->context_->metrics = s->metrics_.get();
  s->context_->tokenizer = shared_tokenizer;
  s->context_->limits = ToLimits(config, s->queue_->info());
  s->context_->seed_base = std::random_device{}();
  s->service_ = std::make_unique<MoedService>(s->context_.get());
  s->queue_->Start();

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(JoinHostPort(config.host, config.port), grpc::InsecureServerCredentials(), &s->port_);
  builder.RegisterService(s->service_.get());
  builder.SetMaxReceiveMessageSize(config.max_receive_message_bytes);
  s->server_ = builder.BuildAndStart();
  if (s->server_ == nullptr || s->port_ == 0) {
    s->queue_->Stop();
    return absl::UnavailableError(
        absl::StrCat("--port: cannot listen on ", JoinHostPort(config.host, config.port), " (in use or bad --host?)"));
  }
  grpc::HealthCheckServiceInterface* health = s->server_->GetHealthCheckService();
  health->SetServingStatus("", true);
  health->SetServingStatus(kHealthServiceName, true);
  return s;
}

std::string MoedServer::StartupLine() const {
  return absl::StrCat("moed: serving ", model_name_, " (", family_, ", ", queue_->info().backend_name, ") on ",
                      JoinHostPort(config_.host, port_), ", metrics on ", JoinHostPort(config_.host, metrics_port_));
}

void MoedServer::Shutdown(absl::Duration timeout) {
  if (shut_down_) return;
  shut_down_ = true;
  server_->GetHealthCheckService()->SetServingStatus(false);
  queue_->StopAccepting();
  if (!queue_->WaitIdle(timeout)) {
    queue_->AbortAll(absl::UnavailableError(absl::StrCat(
        "the server is shutting down and the request did not finish within --shutdown-timeout=",
        absl::FormatDuration(timeout))));
    queue_->WaitIdle(absl::Seconds(5));
  }
  // Streams still writing to slow clients get a moment, then gRPC cancels them.
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  server_->Wait();
  queue_->Stop();
  metrics_http_.reset();
}

MoedServer::~MoedServer() {
  if (server_ != nullptr) Shutdown(absl::ZeroDuration());
}

}  // namespace moed::server
