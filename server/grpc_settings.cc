// Channel arguments and the resource quota of the gRPC server.
#include "server/grpc_settings.h"

#include <grpc/grpc.h>
#include <grpcpp/resource_quota.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <vector>
#include <sstream>
#include <string>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/impl/server_builder_option.h>
#include <grpcpp/security/server_credentials.h>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "engine/common/status_macros.h"

namespace moed::server {
namespace {

int Ms(absl::Duration d) { return static_cast<int>(absl::ToInt64Milliseconds(d)); }

// Linking gRPC's reflection library registers its builder plugin for every server (a static initializer);
// without --enable-reflection this option takes it out of the builder again.
class WithoutReflection final : public grpc::ServerBuilderOption {
 public:
  void UpdateArguments(grpc::ChannelArguments* /*args*/) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>* plugins) override {
    const std::string name = grpc::reflection::ProtoServerReflectionPlugin().name();
    plugins->erase(std::remove_if(plugins->begin(), plugins->end(),
                                  [&](const auto& p) { return p->name() == name; }),
                   plugins->end());
  }
};

absl::StatusOr<std::string> ReadPem(const char* flag, const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  if (in) text << in.rdbuf();
  if (!in || text.str().find("-----BEGIN ") == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, " ", path, ": cannot be read as PEM"));
  }
  return text.str();
}

}  // namespace

std::unique_ptr<grpc::ServerBuilderOption> WithoutReflectionOption() { return std::make_unique<WithoutReflection>(); }

void ApplyGrpcSettings(const ServerConfig& c, grpc::ServerBuilder& builder) {
  if (c.enable_reflection) {
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  } else {
    builder.SetOption(std::make_unique<WithoutReflection>());
  }
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

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentialsFor(const ServerConfig& c) {
  if (c.tls_cert.empty()) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions options;
  grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  MOED_ASSIGN_OR_RETURN(pair.cert_chain, ReadPem("tls-cert", c.tls_cert));
  MOED_ASSIGN_OR_RETURN(pair.private_key, ReadPem("tls-key", c.tls_key));
  options.pem_key_cert_pairs.push_back(std::move(pair));
  if (!c.tls_client_ca.empty()) {
    MOED_ASSIGN_OR_RETURN(options.pem_root_certs, ReadPem("tls-client-ca", c.tls_client_ca));
    options.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(options);
}

}  // namespace moed::server
