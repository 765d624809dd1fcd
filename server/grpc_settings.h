// The gRPC server's transport settings: channel arguments (stream limits, keepalive enforcement, idle and
// handshake timeouts) and a resource quota, all from ServerConfig.
#pragma once

#include <grpcpp/server_builder.h>

#include "server/config.h"

namespace moed::server {

void ApplyGrpcSettings(const ServerConfig& config, grpc::ServerBuilder& builder);

}  // namespace moed::server
