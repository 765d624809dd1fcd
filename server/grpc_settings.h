// The gRPC server's transport settings: channel arguments (stream limits, keepalive enforcement, idle and
// handshake timeouts), a resource quota and the transport credentials (TLS, mTLS), all from ServerConfig.
#pragma once

#include <memory>

#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>

#include "absl/status/statusor.h"
#include "server/config.h"

namespace moed::server {

void ApplyGrpcSettings(const ServerConfig& config, grpc::ServerBuilder& builder);

// A builder option that keeps the (statically registered) reflection plugin out of a server.
std::unique_ptr<grpc::ServerBuilderOption> WithoutReflectionOption();

// Insecure without --tls-cert; TLS with it; mTLS (client certificates required and verified) with
// --tls-client-ca. Errors name the flag whose file cannot be read.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentialsFor(const ServerConfig& config);

}  // namespace moed::server
