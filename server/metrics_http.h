// MetricsHttpServer: the /metrics endpoint — a small HTTP/1.1 server that renders one prometheus-cpp
// Registry in the text exposition format.
//
// Why not prometheus::Exposer: it runs on civetweb, whose threads are created with a fixed 100 KiB stack;
// glibc refuses such threads once the process's static TLS is large, and cuBLAS/cuBLASLt (linked into
// every CUDA build) bring ~110 KiB of it. So the exposer cannot start in a CUDA build; this server uses
// default-sized threads and nothing but POSIX sockets.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "prometheus/registry.h"

namespace moed::server {

// Serves GET/HEAD /metrics (200), other paths (404), other methods (405). One serving thread handles one
// connection at a time and closes it after the response; a client gets `kIoTimeout` to send its request
// and read the answer, so a stalled scraper cannot hold the endpoint for long.
class MetricsHttpServer {
 public:
  static constexpr int kIoTimeoutSeconds = 5;
  static constexpr size_t kMaxRequestHeaderBytes = 16 * 1024;

  // Binds host:port (port 0 = any free port) and starts the serving thread. The registry is shared and
  // must outlive nothing in particular: it is kept alive here. Errors name the address.
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(const std::string& host, int port,
                                                                   std::shared_ptr<prometheus::Registry> registry);
  ~MetricsHttpServer();  // stops the thread (at most one in-flight response) and closes the socket

  int port() const { return port_; }

 private:
  MetricsHttpServer(int listen_fd, int wake_fd, int port, std::shared_ptr<prometheus::Registry> registry);
  void Serve();                 // the serving thread
  void HandleConnection(int fd);

  const int listen_fd_;
  const int wake_fd_;  // eventfd: written by the destructor to end poll()
  const int port_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace moed::server
