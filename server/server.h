// MoedServer: assembles model, backend, engine, request queue, metrics endpoint and the gRPC server,
// and takes them down in order. Used by main.cc and by in-process tests.
#pragma once

#include <memory>
#include <string>

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/auth.h"
#include "server/config.h"
#include "server/engine_service.h"
#include "server/metrics.h"
#include "server/http_server.h"
#include "server/moed_service.h"
#include "server/openai/openai_front.h"
#include "server/request_queue.h"

namespace moed::server {

// The names health reports on: the whole server ("") and the Moed service.
inline constexpr const char* kHealthServiceName = "moed.v1.Moed";

// Answers every call UNIMPLEMENTED.
class UnimplementedGenericService final : public grpc::CallbackGenericService {
  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext* context) override;
};

class MoedServer {
 public:
  // Loads everything and starts serving. Errors name the flag or file that is wrong.
  static absl::StatusOr<std::unique_ptr<MoedServer>> Start(const ServerConfig& config);
  ~MoedServer();  // Shutdown(0) unless done

  int port() const { return port_; }
  int metrics_port() const { return metrics_port_; }
  int health_port() const { return health_port_; }  // 0 without --health-port
  int http_port() const { return http_port_; }      // 0 without --http-port
  // "moed: serving fortune-moe (mixtral, cpu) on 127.0.0.1:50051, metrics on 127.0.0.1:9400"
  std::string StartupLine() const;

  // Health NOT_SERVING (HTTP /health 503); new Generate calls get UNAVAILABLE; open streams get up to `timeout` to finish and
  // be delivered (health still answers meanwhile), then are ended with UNAVAILABLE; then gRPC (2 s more for
  // clients that do not read), the engine thread and the metrics endpoint stop.
  // Call from one thread (main); idempotent.
  void Shutdown(absl::Duration timeout);

 private:
  MoedServer() = default;
  void SetServing(bool serving);  // health of both names, on both servers

  ServerConfig config_;
  std::string model_name_;
  std::string family_;
  int port_ = 0;
  int metrics_port_ = 0;
  int health_port_ = 0;
  int http_port_ = 0;
  bool shut_down_ = false;

  // Destruction order matters: gRPC server first, then the service, queue, metrics; the routing trace last
  // (the engine thread feeds it until the queue stops).
  std::unique_ptr<RoutingTrace> routing_trace_;
  std::unique_ptr<ServerMetrics> metrics_;
  std::unique_ptr<HttpServer> metrics_http_;
  std::unique_ptr<RequestQueue> queue_;
  std::unique_ptr<EngineService> core_;
  std::unique_ptr<Authenticator> auth_;
  std::unique_ptr<MoedService> service_;
  std::unique_ptr<openai::OpenAIFront> openai_;  // --http-port: the OpenAI front, served by openai_http_
  std::unique_ptr<HttpServer> openai_http_;
  std::unique_ptr<grpc::Server> server_;
  // --health-port: grpc.health.v1 only, plaintext. The generic service answers every other method (gRPC needs
  // one service besides health to start a server).
  UnimplementedGenericService health_only_;
  std::unique_ptr<grpc::Server> health_server_;
};

// "host:port", bracketing IPv6 literals.
std::string JoinHostPort(const std::string& host, int port);

}  // namespace moed::server
