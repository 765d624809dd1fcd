// MoedService: the moed.v1.Moed callback service — Generate (streaming) and the unary RPCs.
#pragma once

#include <grpcpp/grpcpp.h>

#include "moed/v1/moed.grpc.pb.h"
#include "server/service_context.h"

namespace moed::server {

// Thread-safe; `service` must outlive the gRPC server.
class MoedService final : public v1::Moed::CallbackService {
 public:
  explicit MoedService(ServiceContext* service) : service_(service) {}

  grpc::ServerWriteReactor<v1::GenerateResponse>* Generate(grpc::CallbackServerContext* context,
                                                           const v1::GenerateRequest* request) override;
  grpc::ServerUnaryReactor* Tokenize(grpc::CallbackServerContext* context, const v1::TokenizeRequest* request,
                                     v1::TokenizeResponse* response) override;
  grpc::ServerUnaryReactor* GetModelInfo(grpc::CallbackServerContext* context,
                                         const v1::GetModelInfoRequest* request, v1::ModelInfo* response) override;
  grpc::ServerUnaryReactor* GetExpertStats(grpc::CallbackServerContext* context,
                                           const v1::GetExpertStatsRequest* request,
                                           v1::ExpertStats* response) override;
  grpc::ServerUnaryReactor* GetExpertProfile(grpc::CallbackServerContext* context,
                                             const v1::GetExpertProfileRequest* request,
                                             v1::ExpertProfile* response) override;
  grpc::ServerUnaryReactor* ControlRoutingTrace(grpc::CallbackServerContext* context,
                                                const v1::RoutingTraceRequest* request,
                                                v1::RoutingTraceState* response) override;

 private:
  ServiceContext* const service_;
};

}  // namespace moed::server
