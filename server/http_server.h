// HttpServer: the daemon's HTTP/1.1 endpoint on Boost.Beast/Asio — /metrics now, the OpenAI front end next.
// One event-loop thread serves every connection (no thread per connection); each request must arrive whole
// within a deadline (slowloris clients are cut), connections are kept alive between requests, and their number
// is capped. Handlers are synchronous and run on the event-loop thread: they must be quick.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace moed::server {

struct HttpRequest {
  std::string method;  // "GET", "HEAD", ...
  std::string target;  // path and query, as sent
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

struct HttpServerOptions {
  absl::Duration request_timeout = absl::Seconds(10);  // to receive one whole request (or wait for the next one),
                                                       // and to send one response
  int max_connections = 1024;                          // more are closed at once
  size_t max_header_bytes = 16 * 1024;
  size_t max_body_bytes = 64 * 1024;
};

class HttpServer {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;

  // Binds host:port (0 = any free port) and starts the event-loop thread. `routes`: exact path (query ignored)
  // → handler, for GET and HEAD (HEAD sends the headers only); other paths get 404, other methods 405.
  // Errors name the address.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(const std::string& host, int port,
                                                           std::map<std::string, Handler> routes,
                                                           HttpServerOptions options = {});
  ~HttpServer();  // closes every connection and joins the thread

  int port() const;
  int open_connections() const;

  struct Impl;  // opaque (http_server.cc)

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace moed::server
