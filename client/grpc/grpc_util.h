// gRPC helpers shared by moectl and moe-bench: channels, status-code names, and the standard
// grpc.health.v1 Check call made without generated health stubs.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"

namespace moed::client {

// An insecure channel to `addr` ("host:port") with message limits large enough for any reply.
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& addr);

// How a client reaches a secured moed: TLS trusting `tls_ca` (PEM file; empty = plaintext), a client
// certificate for mTLS, and a bearer token sent as `authorization: Bearer <token>` on every call.
struct ChannelSecurity {
  std::string tls_ca;
  std::string tls_cert;
  std::string tls_key;
  std::string token;
};
// MakeChannel with `security`; errors name the PEM file that cannot be read.
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const std::string& addr, const ChannelSecurity& security);

// "OK", "INVALID_ARGUMENT", "RESOURCE_EXHAUSTED", ... as in the gRPC status-code spec.
std::string StatusCodeName(grpc::StatusCode code);

// Sets a deadline `timeout` from now; a zero timeout means no deadline.
void SetTimeout(grpc::ClientContext& ctx, absl::Duration timeout);

// grpc.health.v1.Health/Check for `service` ("" = the whole server). On an OK call, `serving_status`
// is the status name ("SERVING", "NOT_SERVING", "UNKNOWN", "SERVICE_UNKNOWN").
grpc::Status CheckHealth(grpc::Channel& channel, const std::string& service, absl::Duration timeout,
                         std::string* serving_status);

}  // namespace moed::client
