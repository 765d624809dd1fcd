// HttpServer: the daemon's HTTP/1.1 endpoint on Boost.Beast/Asio — /metrics and the OpenAI front end.
// One event-loop thread serves every connection (no thread per connection); each request must arrive whole
// within a deadline (slowloris clients are cut), connections are kept alive between requests, and their number
// is capped. Optional TLS (and mTLS) through Asio SSL. Two kinds of handlers: synchronous ones for GET/HEAD that
// run on the event-loop thread (they must be quick), and asynchronous ones that get an HttpResponder they may
// complete later from any thread, with a whole response or a chunked stream (SSE).
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace moed::server {

struct HttpRequest {
  std::string method;  // "GET", "HEAD", "POST", ...
  std::string target;  // path and query, as sent
  std::string body;
  std::optional<std::string> authorization;  // the Authorization header, when sent
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

// How one chunk write of a stream ended.
enum class WriteResult { kOk, kFailed, kTimedOut };  // kTimedOut: the client did not take it within the write timeout

// The answer to one asynchronous request. Thread-safe: every call is posted to the event-loop thread, in order.
// Exactly one of Respond, or StartStream + Write… + EndStream; Abort closes the connection at any time. Calls
// after the connection closed are dropped (a Write's `done` then runs with kFailed).
class HttpResponder {
 public:
  virtual ~HttpResponder() = default;
  virtual void Respond(HttpResponse response) = 0;
  // Sends the status line and headers of a chunked response.
  virtual void StartStream(int status, std::string content_type) = 0;
  // Sends `data` as one chunk. `done` (may be empty) runs on the event-loop thread once the bytes left for the
  // kernel (kOk), the connection failed (kFailed), or the write took longer than the write timeout (kTimedOut;
  // the connection is then closed).
  virtual void Write(std::string data, std::function<void(WriteResult)> done) = 0;
  virtual void EndStream() = 0;  // the last chunk; the connection is then kept alive or closed, as asked
  virtual void Abort() = 0;
  // `gone` runs once, on the event-loop thread, when the connection ends before the response did (the client
  // closed it, a write failed or timed out). Set it once, right after the handler got the responder.
  virtual void OnClientGone(std::function<void()> gone) = 0;
};

struct HttpServerOptions {
  std::string flag_name = "--metrics-port";            // named in bind errors
  absl::Duration request_timeout = absl::Seconds(10);  // to receive one whole request (or wait for the next one),
                                                       // and to send one whole response
  absl::Duration write_timeout = absl::Seconds(10);    // one chunk of a stream
  int max_connections = 1024;                          // more are closed at once
  size_t max_header_bytes = 16 * 1024;
  size_t max_body_bytes = 64 * 1024;                   // larger bodies get 413
  int send_buffer_bytes = 0;  // > 0: SO_SNDBUF of each connection, so a client that does not read stalls writes
                              // soon instead of filling megabytes of kernel buffer; 0 = the system's default
  // TLS: PEM files; both set = HTTPS only. tls_client_ca: require and verify client certificates (mTLS).
  std::string tls_cert, tls_key, tls_client_ca;
};

class HttpServer {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;
  using AsyncHandler = std::function<void(HttpRequest, std::shared_ptr<HttpResponder>)>;

  struct Routes {
    std::map<std::string, Handler> get;         // exact path (query ignored), GET and HEAD (HEAD: headers only)
    std::map<std::string, AsyncHandler> any;    // exact path, any method (the handler answers 405 itself)
    AsyncHandler not_found;                     // every other path; empty = a plain 404
  };

  // Binds host:port (0 = any free port) and starts the event-loop thread. Paths in neither map get 404;
  // other methods on a `get` path get 405. Errors name the address, the flag and the TLS file.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(const std::string& host, int port, Routes routes,
                                                           HttpServerOptions options = {});
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(const std::string& host, int port,
                                                           std::map<std::string, Handler> routes,
                                                           HttpServerOptions options = {});
  ~HttpServer();  // closes every connection and joins the thread; responders still held then drop their calls

  int port() const;
  int open_connections() const;

  struct Impl;  // opaque (http_server.cc)

 private:
  explicit HttpServer(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace moed::server
