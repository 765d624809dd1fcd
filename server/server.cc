// Start-up (flags → model → backend → engine → services → listen) and ordered shutdown.
#include "server/server.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <random>
#include <utility>

#include <grpcpp/health_check_service_interface.h>

#include "absl/strings/str_cat.h"
#include "grpc/health/v1/health.pb.h"
#include "prometheus/text_serializer.h"
#include "absl/strings/strip.h"
#include "engine/backend/backend.h"
#include "engine/common/status_macros.h"
#include "engine/model/model.h"
#include "engine/runtime/engine_core.h"
#include "engine/runtime/model_source.h"
#include "engine/tokenizer/tokenizer.h"
#include "server/grpc_settings.h"

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

RequestLimits ToLimits(const ServerConfig& c, const EngineInfo& info, const Tokenizer& tokenizer) {
  RequestLimits l;
  l.vocab_size = info.spec.vocab_size;
  l.context_length = info.config.max_model_len > 0 ? info.config.max_model_len : info.spec.max_position_embeddings;
  l.max_tokens_limit = c.max_tokens_limit > 0 ? std::min(c.max_tokens_limit, l.context_length) : l.context_length;
  l.default_max_tokens = c.default_max_tokens;
  l.max_stop_strings = c.max_stop_strings;
  l.max_stop_length = c.max_stop_length;
  l.max_logprobs = c.max_logprobs;
  l.max_prompt_bytes = PromptByteCap(l.context_length, tokenizer, c.max_prompt_bytes);
  return l;
}

// --expert-cache-slots, or --expert-cache-fraction of the model's routed experts (rounded up); 0 = unset.
int ExpertCacheSlots(const ServerConfig& c, const ModelSpec& spec) {
  if (c.expert_cache_slots > 0 || c.expert_cache_fraction <= 0) return c.expert_cache_slots;
  return std::max(1, static_cast<int>(std::ceil(c.expert_cache_fraction * spec.num_routed_experts() - 1e-9)));
}

// /metrics (the text exposition) and / (an index), served without authentication on --metrics-host.
std::map<std::string, HttpServer::Handler> MetricsRoutes(std::shared_ptr<prometheus::Registry> registry) {
  std::map<std::string, HttpServer::Handler> routes;
  routes["/metrics"] = [registry](const HttpRequest&) {
    return HttpResponse{200, "text/plain; version=0.0.4; charset=utf-8",
                        prometheus::TextSerializer().Serialize(registry->Collect())};
  };
  routes["/"] = [](const HttpRequest&) {
    return HttpResponse{200, "text/plain; charset=utf-8", "moed: Prometheus metrics at /metrics\n"};
  };
  return routes;
}

// The OpenAI front's HTTP options: the gRPC server's TLS, a body that can hold the longest prompt escaped
// (JSON's \uXXXX: up to 6 bytes per byte) plus the rest of the request, and writes cut after the stall timeout.
HttpServerOptions OpenAIHttpOptions(const ServerConfig& c, const RequestLimits& limits) {
  HttpServerOptions o;
  o.flag_name = "--http-port";
  o.max_connections = c.http_max_connections;
  o.max_body_bytes = static_cast<size_t>(6 * limits.max_prompt_bytes + (64 << 10));
  o.write_timeout = c.stream_stall_timeout;
  o.send_buffer_bytes = 64 << 10;
  o.tls_cert = c.tls_cert;
  o.tls_key = c.tls_key;
  o.tls_client_ca = c.tls_client_ca;
  return o;
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
  source.synthetic_layers = config.synthetic_layers;
  absl::StatusOr<OpenedModel> opened = OpenModel(config.model, source);
  if (!opened.ok()) return Prefixed(absl::StrCat("--model ", config.model, ": "), opened.status());
  const std::shared_ptr<const Model>* model = &opened->model;
  std::shared_ptr<const Tokenizer> shared_tokenizer = opened->tokenizer;

  BackendOptions backend_options;
  backend_options.moe_capacity_factor = config.moe_capacity_factor;
  backend_options.num_threads = config.threads;
  backend_options.cpu_kernels = config.cpu_kernels;
  backend_options.expert_cache_slots = ExpertCacheSlots(config, (*model)->spec);
  backend_options.expert_cache_bytes = config.expert_cache_bytes;
  backend_options.expert_cache_policy = config.expert_cache_policy;
  backend_options.expert_cache_prefetch = config.expert_cache_prefetch;
  backend_options.router_zipf = config.router_zipf;
  backend_options.cuda_moe = config.cuda_moe;
  backend_options.cuda_graphs = config.cuda_graphs;
  backend_options.cuda_attention = config.cuda_attention;
  backend_options.cuda_sampling = config.cuda_sampling;
  absl::StatusOr<std::unique_ptr<Backend>> backend = CreateBackend(*backend_kind, *model, backend_options);
  if (!backend.ok()) return Prefixed(absl::StrCat("--backend ", config.backend, ": "), backend.status());
  const ModelSpec& spec = (*model)->spec;
  s->routing_trace_ = std::make_unique<RoutingTrace>(spec.num_layers, spec.num_experts);
  if (!config.routing_trace.empty()) {
    absl::Status started = s->routing_trace_->Start(RoutingTraceOptions{.path = config.routing_trace,
                                                                        .sample = config.routing_trace_sample});
    if (!started.ok()) return Prefixed(std::string("--routing-trace: "), started);
  }
  EngineConfig engine_config = ToEngineConfig(config);
  engine_config.token_routing_observer = [trace = s->routing_trace_.get()](const TokenRoutingEvent& e) {
    trace->Observe(e);
  };
  absl::StatusOr<std::unique_ptr<EngineCore>> engine =
      EngineCore::Create(*std::move(backend), shared_tokenizer, engine_config);
  if (!engine.ok()) return Prefixed(std::string("engine: "), engine.status());

  MetricsModelInfo metrics_info;
  metrics_info.model = s->model_name_;
  metrics_info.family = std::string(FamilyName((*engine)->spec().family));
  metrics_info.backend = std::string((*engine)->backend_name());
  metrics_info.num_layers = (*engine)->spec().num_layers;
  metrics_info.num_experts = (*engine)->spec().num_experts;
  metrics_info.routed_experts = (*engine)->spec().num_routed_experts();
  metrics_info.layer_is_moe = (*engine)->spec().layer_is_moe;
  s->family_ = metrics_info.family;
  s->metrics_ = std::make_unique<ServerMetrics>(metrics_info, config.metrics_per_expert);
  MOED_ASSIGN_OR_RETURN(s->metrics_http_,
                        HttpServer::Start(config.metrics_host.empty() ? config.host : config.metrics_host,
                                          config.metrics_port, MetricsRoutes(s->metrics_->registry())));
  s->metrics_port_ = s->metrics_http_->port();

  s->queue_ = std::make_unique<RequestQueue>(*std::move(engine), s->metrics_.get(), config.min_step_time);
  s->core_ = std::make_unique<EngineService>(config, s->queue_.get(), s->metrics_.get(), shared_tokenizer,
                                             ToLimits(config, s->queue_->info(), *shared_tokenizer),
                                             std::random_device{}());
  if (!config.auth_token_file.empty()) {
    absl::StatusOr<Authenticator> auth = Authenticator::Load(config.auth_token_file);
    if (!auth.ok()) return auth.status();
    s->auth_ = std::make_unique<Authenticator>(*std::move(auth));
  } else {
    s->auth_ = std::make_unique<Authenticator>();
  }
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials = ServerCredentialsFor(config);
  if (!credentials.ok()) return credentials.status();
  s->service_ = std::make_unique<MoedService>(s->core_.get(), s->auth_.get(), s->routing_trace_.get());
  if (config.http_port != 0) {
    MOED_ASSIGN_OR_RETURN(s->openai_, openai::OpenAIFront::Create(s->core_.get(), s->auth_.get(), config,
                                                                   s->model_name_));
    MOED_ASSIGN_OR_RETURN(s->openai_http_,
                          HttpServer::Start(config.http_host.empty() ? config.host : config.http_host,
                                            config.http_port == -1 ? 0 : config.http_port, s->openai_->Routes(),
                                            OpenAIHttpOptions(config, s->core_->limits())));
    s->http_port_ = s->openai_http_->port();
  }
  s->queue_->Start();

  grpc::EnableDefaultHealthCheckService(true);
  // Referencing the health messages links their descriptors in, so reflection can describe the health service.
  if (config.enable_reflection) (void)grpc::health::v1::HealthCheckRequest::descriptor();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(JoinHostPort(config.host, config.port), *credentials, &s->port_);
  builder.RegisterService(s->service_.get());
  ApplyGrpcSettings(config, builder);
  s->server_ = builder.BuildAndStart();
  if (s->server_ == nullptr || s->port_ == 0) {
    s->queue_->Stop();
    return absl::UnavailableError(
        absl::StrCat("--port: cannot listen on ", JoinHostPort(config.host, config.port), " (in use or bad --host?)"));
  }
  if (config.health_port > 0 || config.health_port == -1) {
    // Health alone, in plaintext on the metrics address: kubelet's gRPC probes cannot speak TLS.
    const std::string address = JoinHostPort(config.metrics_host.empty() ? config.host : config.metrics_host,
                                             config.health_port == -1 ? 0 : config.health_port);
    grpc::ServerBuilder health_builder;
    health_builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &s->health_port_);
    health_builder.SetOption(WithoutReflectionOption());
    health_builder.RegisterCallbackGenericService(&s->health_only_);  // every other method: UNIMPLEMENTED
    s->health_server_ = health_builder.BuildAndStart();
    if (s->health_server_ == nullptr || s->health_port_ == 0) {
      s->server_->Shutdown();
      s->queue_->Stop();
      return absl::UnavailableError(absl::StrCat("--health-port: cannot listen on ", address));
    }
  }
  s->SetServing(true);
  return s;
}

grpc::ServerGenericBidiReactor* UnimplementedGenericService::CreateReactor(grpc::GenericCallbackServerContext*) {
  class Unimplemented final : public grpc::ServerGenericBidiReactor {
   public:
    Unimplemented() { Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "only grpc.health.v1 is served here")); }
    void OnDone() override { delete this; }
  };
  return new Unimplemented();
}

void MoedServer::SetServing(bool serving) {
  if (openai_ != nullptr) openai_->SetServing(serving);
  for (grpc::Server* server : {server_.get(), health_server_.get()}) {
    if (server == nullptr) continue;
    grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();
    if (serving) {
      health->SetServingStatus("", true);
      health->SetServingStatus(kHealthServiceName, true);
    } else {
      health->SetServingStatus(false);  // every name
    }
  }
}

std::string MoedServer::StartupLine() const {
  const std::string& metrics_host = config_.metrics_host.empty() ? config_.host : config_.metrics_host;
  std::string line =
      absl::StrCat("moed: serving ", model_name_, " (", family_, ", ", queue_->info().backend_name, ") on ",
                   JoinHostPort(config_.host, port_), ", metrics on ", JoinHostPort(metrics_host, metrics_port_));
  if (health_server_ != nullptr) absl::StrAppend(&line, ", health on ", JoinHostPort(metrics_host, health_port_));
  if (openai_http_ != nullptr) {
    absl::StrAppend(&line, ", http on ", JoinHostPort(config_.http_host.empty() ? config_.host : config_.http_host,
                                                      http_port_));
  }
  return line;
}

void MoedServer::Shutdown(absl::Duration timeout) {
  if (shut_down_) return;
  shut_down_ = true;
  // Health keeps answering NOT_SERVING (gRPC keeps serving) while open streams finish and are delivered.
  SetServing(false);
  queue_->StopAccepting();
  if (!core_->WaitStreamsClosed(timeout)) {
    const absl::Status why = absl::UnavailableError(absl::StrCat(
        "the server is shutting down and the request did not finish within --shutdown-timeout=",
        absl::FormatDuration(timeout)));
    queue_->AbortAll(why);
    core_->AbortStreams(why);
    queue_->WaitIdle(absl::Seconds(5));
  }
  // Streams still writing to clients that do not read get a moment, then gRPC cancels them.
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  server_->Wait();
  if (health_server_ != nullptr) health_server_->Shutdown(std::chrono::system_clock::now());
  core_->StopPool();
  queue_->Stop();
  openai_http_.reset();
  metrics_http_.reset();
}

MoedServer::~MoedServer() {
  if (server_ != nullptr) Shutdown(absl::ZeroDuration());
}

}  // namespace moed::server
