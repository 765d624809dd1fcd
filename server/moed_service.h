// MoedService: the gRPC front end of moed.v1.Moed — callback methods taking raw request bytes, so that a request
// that does not parse gets INVALID_ARGUMENT naming the problem (and is counted) instead of gRPC's default.
#pragma once

#include <grpcpp/grpcpp.h>

#include "moed/v1/moed.grpc.pb.h"
#include "server/auth.h"
#include "server/engine_service.h"

namespace moed::server {

using RawMoedService = v1::Moed::WithRawCallbackMethod_Generate<v1::Moed::WithRawCallbackMethod_Tokenize<
    v1::Moed::WithRawCallbackMethod_GetModelInfo<v1::Moed::WithRawCallbackMethod_GetExpertStats<v1::Moed::Service>>>>;

// Thread-safe; `core` and `auth` must outlive the gRPC server. Every method needs a token when `auth` has
// tokens (health and reflection are other services, exempt).
class MoedService final : public RawMoedService {
 public:
  MoedService(EngineService* core, const Authenticator* auth) : core_(core), auth_(auth) {}

  grpc::ServerWriteReactor<grpc::ByteBuffer>* Generate(grpc::CallbackServerContext* context,
                                                       const grpc::ByteBuffer* request) override;
  grpc::ServerUnaryReactor* Tokenize(grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
                                     grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* GetModelInfo(grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
                                         grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* GetExpertStats(grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
                                           grpc::ByteBuffer* response) override;

 private:
  // The caller of `context` per its authorization header.
  absl::StatusOr<Caller> CallerOf(grpc::CallbackServerContext* context) const;
  // Authenticates and parses a unary request; on failure finishes `reactor` (UNAUTHENTICATED, or
  // INVALID_ARGUMENT counted as unparseable) and returns false.
  bool AdmitOrFinish(grpc::CallbackServerContext* context, const grpc::ByteBuffer& request,
                     google::protobuf::Message* message, grpc::ServerUnaryReactor* reactor);

  EngineService* const core_;
  const Authenticator* const auth_;
};

}  // namespace moed::server
