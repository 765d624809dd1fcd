// MoedService: the gRPC front end of moed.v1.Moed — callback methods taking raw request bytes, so that a request
// that does not parse gets INVALID_ARGUMENT naming the problem (and is counted) instead of gRPC's default.
#pragma once

#include <grpcpp/grpcpp.h>

#include "moed/v1/moed.grpc.pb.h"
#include "server/engine_service.h"

namespace moed::server {

using RawMoedService = v1::Moed::WithRawCallbackMethod_Generate<v1::Moed::WithRawCallbackMethod_Tokenize<
    v1::Moed::WithRawCallbackMethod_GetModelInfo<v1::Moed::WithRawCallbackMethod_GetExpertStats<v1::Moed::Service>>>>;

// Thread-safe; `core` must outlive the gRPC server.
class MoedService final : public RawMoedService {
 public:
  explicit MoedService(EngineService* core) : core_(core) {}

  grpc::ServerWriteReactor<grpc::ByteBuffer>* Generate(grpc::CallbackServerContext* context,
                                                       const grpc::ByteBuffer* request) override;
  grpc::ServerUnaryReactor* Tokenize(grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
                                     grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* GetModelInfo(grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
                                         grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* GetExpertStats(grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
                                           grpc::ByteBuffer* response) override;

 private:
  // Parses a unary request; on failure counts it and finishes `reactor` with INVALID_ARGUMENT.
  bool ParseOrFinish(const grpc::ByteBuffer& request, google::protobuf::Message* message,
                     grpc::ServerUnaryReactor* reactor);

  EngineService* const core_;
};

}  // namespace moed::server
