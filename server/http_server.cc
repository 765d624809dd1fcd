// HttpServer on Boost.Beast: an acceptor and one Session per connection, all on one io_context thread.
#include "server/http_server.h"

#include <chrono>
#include <optional>
#include <utility>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "absl/strings/str_cat.h"
#include "server/log.h"

namespace moed::server {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

std::chrono::steady_clock::duration Chrono(absl::Duration d) {
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(absl::ToChronoNanoseconds(d));
}

}  // namespace

struct HttpServer::Impl {
  // Declared before io: the io_context's destruction destroys pending sessions, which use these.
  HttpServerOptions options;
  std::map<std::string, Handler> routes;
  std::atomic<int> connections{0};
  asio::io_context io{1};
  tcp::acceptor acceptor{io};
  asio::steady_timer accept_retry{io};
  int port = 0;
  std::thread thread;

  void Accept();
  HttpResponse Route(const http::request<http::string_body>& req) const;
};

namespace {

// One connection: read a request within the deadline, answer, repeat while keep-alive; ends on any error,
// timeout or "Connection: close". Owned by its pending asynchronous operation (shared_from_this).
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, HttpServer::Impl* server)
      : stream_(std::move(socket)), server_(server) {
    ++server_->connections;
  }
  ~Session() { --server_->connections; }

  void Read() {
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(server_->options.max_header_bytes));
    parser_->body_limit(server_->options.max_body_bytes);
    // One deadline for waiting for and receiving the whole request: a byte now and then does not extend it.
    stream_.expires_after(Chrono(server_->options.request_timeout));
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

 private:
  void OnRead(beast::error_code ec) {
    if (ec == http::error::header_limit || ec == http::error::body_limit) {
      return Reply(HttpResponse{431, "text/plain; charset=utf-8", "request too large\n"}, false, false);
    }
    if (ec == http::error::bad_target || ec == http::error::bad_method || ec == http::error::bad_version) {
      return Reply(HttpResponse{400, "text/plain; charset=utf-8", "malformed request\n"}, false, false);
    }
    if (ec) return Close();  // timeout, peer gone, or a malformed stream
    const http::request<http::string_body>& req = parser_->get();
    Reply(server_->Route(req), req.keep_alive(), req.method() == http::verb::head);
  }

  void Reply(HttpResponse r, bool keep_alive, bool head_only) {
    response_ = {};
    response_.version(11);
    response_.result(static_cast<unsigned>(r.status));
    response_.set(http::field::server, "moed");
    response_.set(http::field::content_type, r.content_type);
    response_.keep_alive(keep_alive);
    response_.content_length(r.body.size());
    if (!head_only) response_.body() = std::move(r.body);
    serializer_.emplace(response_);
    if (head_only) serializer_->split(true);
    stream_.expires_after(Chrono(server_->options.request_timeout));
    auto done = [self = shared_from_this(), keep_alive](beast::error_code ec, size_t) {
      if (ec || !keep_alive) return self->Close();
      self->Read();
    };
    if (head_only) {
      http::async_write_header(stream_, *serializer_, std::move(done));
    } else {
      http::async_write(stream_, *serializer_, std::move(done));
    }
  }

  void Close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.socket().close(ignored);
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> response_;
  std::optional<http::response_serializer<http::string_body>> serializer_;
  HttpServer::Impl* const server_;
};

}  // namespace

HttpResponse HttpServer::Impl::Route(const http::request<http::string_body>& req) const {
  if (req.method() != http::verb::get && req.method() != http::verb::head) {
    return HttpResponse{405, "text/plain; charset=utf-8", "only GET and HEAD\n"};
  }
  const std::string target(req.target());
  const std::string path = target.substr(0, target.find('?'));
  const auto it = routes.find(path);
  if (it == routes.end()) return HttpResponse{404, "text/plain; charset=utf-8", "not found; see /\n"};
  return it->second(HttpRequest{std::string(req.method_string()), target});
}

void HttpServer::Impl::Accept() {
  acceptor.async_accept([this](beast::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted) return;  // stopping
    if (ec) {
      // Out of file descriptors (or similar): log, then retry after a pause instead of spinning.
      LogEvent(LogSeverity::kError, "http: accept failed", {{"error", ec.message()}});
      accept_retry.expires_after(std::chrono::milliseconds(200));
      accept_retry.async_wait([this](beast::error_code wait_ec) {
        if (!wait_ec) Accept();
      });
      return;
    }
    if (connections.load() >= options.max_connections) {
      beast::error_code ignored;
      socket.close(ignored);
    } else {
      std::make_shared<Session>(std::move(socket), this)->Read();
    }
    Accept();
  });
}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const std::string& host, int port,
                                                              std::map<std::string, Handler> routes,
                                                              HttpServerOptions options) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->routes = std::move(routes);
  beast::error_code ec;
  const asio::ip::address address = asio::ip::make_address(host == "localhost" ? "127.0.0.1" : host, ec);
  if (ec) return absl::InvalidArgumentError(absl::StrCat("--metrics-host ", host, ": not an IP address"));
  const tcp::endpoint endpoint(address, static_cast<uint16_t>(port));
  impl->acceptor.open(endpoint.protocol(), ec);
  if (!ec) impl->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) impl->acceptor.bind(endpoint, ec);
  if (!ec) impl->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError(absl::StrCat("--metrics-port: cannot listen on ", host, ":", port, ": ",
                                               ec.message()));
  }
  impl->port = impl->acceptor.local_endpoint().port();
  impl->Accept();
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->io.run(); });
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() {
  impl_->io.stop();  // pending operations (and with them the sessions) are destroyed with the io_context
  if (impl_->thread.joinable()) impl_->thread.join();
}

int HttpServer::port() const { return impl_->port; }
int HttpServer::open_connections() const { return impl_->connections.load(); }

}  // namespace moed::server
