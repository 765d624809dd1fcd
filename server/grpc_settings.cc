// Channel arguments and the resource quota of the gRPC server.
#include "server/grpc_settings.h"

#include <grpc/grpc.h>
#include <grpcpp/resource_quota.h>

#include "absl/time/time.h"

namespace moed::server {
namespace {

int Ms(absl::Duration d) { return static_cast<int>(absl::ToInt64Milliseconds(d)); }

}  // namespace

void ApplyGrpcSettings(const ServerConfig& c, grpc::ServerBuilder& builder) {
  builder.SetMaxReceiveMessageSize(c.max_receive_message_bytes);
  // Memory for all connections and calls together; over it gRPC refuses new work instead of growing.
  grpc::ResourceQuota quota("moed");
  quota.Resize(static_cast<size_t>(c.grpc_memory_bytes));
  builder.SetResourceQuota(quota);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, c.grpc_max_streams_per_connection);
  // A connection that has not finished its HTTP/2 (or TLS) handshake within this is closed.
  builder.AddChannelArgument(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS, Ms(c.grpc_handshake_timeout));
  // A connection without calls for this long is closed (GOAWAY); clients reconnect when they need to.
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS, Ms(c.grpc_idle_timeout));
  // The server pings quiet connections so dead peers are found; a client that pings more often than
  // --grpc-min-client-ping-interval is told GOAWAY after two strikes.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, Ms(c.grpc_keepalive_time));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 0);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                             Ms(c.grpc_min_client_ping_interval));
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 2);
}

}  // namespace moed::server
