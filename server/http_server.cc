// HttpServer on Boost.Beast: an acceptor and one Session per connection (plain TCP or TLS), all on one
// io_context thread; asynchronous responses reach a session through SessionResponder, which posts to that thread.
#include "server/http_server.h"

#include <chrono>
#include <deque>
#include <optional>
#include <sstream>
#include <utility>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "absl/strings/str_cat.h"
#include "server/log.h"

namespace moed::server {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

std::chrono::steady_clock::duration Chrono(absl::Duration d) {
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(absl::ToChronoNanoseconds(d));
}

// What a SessionResponder drives; every method runs on the event-loop thread.
class SessionBase {
 public:
  virtual ~SessionBase() = default;
  virtual void DoRespond(HttpResponse response) = 0;
  virtual void DoStartStream(int status, std::string content_type) = 0;
  virtual void DoWrite(std::string data, std::function<void(WriteResult)> done) = 0;
  virtual void DoEndStream() = 0;
  virtual void DoAbort() = 0;
  virtual void DoOnGone(std::function<void()> gone) = 0;
};

}  // namespace

struct HttpServer::Impl : std::enable_shared_from_this<HttpServer::Impl> {
  // Declared before io: the io_context's destruction destroys pending sessions, which use these.
  HttpServerOptions options;
  Routes routes;
  std::atomic<int> connections{0};
  std::optional<ssl::context> tls;  // set: every connection is TLS
  asio::io_context io{1};
  tcp::acceptor acceptor{io};
  asio::steady_timer accept_retry{io};
  int port = 0;
  std::thread thread;

  void Accept();
};

namespace {

// Holds its session (and the server's io_context) alive until the handler lets go of it.
class SessionResponder final : public HttpResponder {
 public:
  SessionResponder(std::shared_ptr<HttpServer::Impl> server, std::shared_ptr<SessionBase> session)
      : server_(std::move(server)), session_(std::move(session)) {}
  void Respond(HttpResponse r) override {
    Post([s = session_, r = std::move(r)]() mutable { s->DoRespond(std::move(r)); });
  }
  void StartStream(int status, std::string type) override {
    Post([s = session_, status, type = std::move(type)]() mutable { s->DoStartStream(status, std::move(type)); });
  }
  void Write(std::string data, std::function<void(WriteResult)> done) override {
    Post([s = session_, data = std::move(data), done = std::move(done)]() mutable {
      s->DoWrite(std::move(data), std::move(done));
    });
  }
  void EndStream() override {
    Post([s = session_] { s->DoEndStream(); });
  }
  void Abort() override {
    Post([s = session_] { s->DoAbort(); });
  }
  void OnClientGone(std::function<void()> gone) override {
    Post([s = session_, gone = std::move(gone)]() mutable { s->DoOnGone(std::move(gone)); });
  }

 private:
  template <class F>
  void Post(F f) {
    asio::post(server_->io, std::move(f));  // after the server stopped: never run, destroyed with the io_context
  }
  std::shared_ptr<HttpServer::Impl> server_;  // declared first: destroyed after the session
  std::shared_ptr<SessionBase> session_;
};

template <class Stream>
tcp::socket& Socket(Stream& stream) {
  return beast::get_lowest_layer(stream).socket();
}

// One connection: read a request within the deadline, answer, repeat while keep-alive; ends on any error,
// timeout or "Connection: close". Owned by its pending asynchronous operations and by a responder.
template <class Stream>
class Session final : public SessionBase, public std::enable_shared_from_this<Session<Stream>> {
 public:
  template <class... Args>
  explicit Session(HttpServer::Impl* server, Args&&... args) : stream_(std::forward<Args>(args)...), server_(server) {
    ++server_->connections;
  }
  ~Session() override { --server_->connections; }

  void Begin() {
    if constexpr (std::is_same_v<Stream, beast::tcp_stream>) {
      Read();
    } else {
      beast::get_lowest_layer(stream_).expires_after(Chrono(server_->options.request_timeout));
      stream_.async_handshake(ssl::stream_base::server, [self = this->shared_from_this()](beast::error_code ec) {
        if (ec) return self->Close();
        self->Read();
      });
    }
  }

  void DoRespond(HttpResponse r) override {
    if (closed_ || ended_) return;
    Reply(std::move(r), keep_alive_, head_only_);
  }
  void DoStartStream(int status, std::string content_type) override {
    if (closed_ || ended_) return;
    http::response<http::empty_body> head;
    head.version(11);
    head.result(static_cast<unsigned>(status));
    head.set(http::field::server, "moed");
    head.set(http::field::content_type, content_type);
    head.set(http::field::cache_control, "no-cache");
    head.keep_alive(keep_alive_);
    head.chunked(true);
    std::ostringstream os;
    os << head.base();
    Enqueue(os.str(), nullptr, false);
  }
  void DoWrite(std::string data, std::function<void(WriteResult)> done) override {
    if (closed_ || ended_) {
      if (done) done(WriteResult::kFailed);
      return;
    }
    std::string chunk = absl::StrCat(absl::Hex(data.size()), "\r\n");
    chunk += data;
    chunk += "\r\n";
    Enqueue(std::move(chunk), std::move(done), false);
  }
  void DoEndStream() override {
    if (closed_ || ended_) return;
    Enqueue("0\r\n\r\n", nullptr, true);
  }
  void DoAbort() override { Close(); }
  void DoOnGone(std::function<void()> gone) override {
    if (closed_ && !ended_) return gone();
    gone_ = std::move(gone);
  }

  void Read() {
    ended_ = false;
    gone_ = nullptr;
    ++watch_;
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(server_->options.max_header_bytes));
    parser_->body_limit(server_->options.max_body_bytes);
    // One deadline for waiting for and receiving the whole request: a byte now and then does not extend it.
    beast::get_lowest_layer(stream_).expires_after(Chrono(server_->options.request_timeout));
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = this->shared_from_this()](beast::error_code ec, size_t) { self->OnHeader(ec); });
  }

 private:
  struct Pending {
    std::string bytes;
    std::function<void(WriteResult)> done;
    bool last = false;
  };

  // A client that sent "Expect: 100-continue" (curl, for bodies over 1 KiB) waits for it before the body.
  void OnHeader(beast::error_code ec) {
    if (ec) return OnRead(ec);
    auto read_body = [self = this->shared_from_this()] {
      http::async_read(self->stream_, self->buffer_, *self->parser_,
                       [self](beast::error_code read_ec, size_t) { self->OnRead(read_ec); });
    };
    const auto& head = parser_->get();
    if (parser_->is_done() || !beast::iequals(head[http::field::expect], "100-continue")) return read_body();
    static const std::string kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    asio::async_write(stream_, asio::buffer(kContinue), [self = this->shared_from_this(), read_body](
                                                             beast::error_code write_ec, size_t) {
      if (write_ec) return self->Close();
      read_body();
    });
  }

  void OnRead(beast::error_code ec) {
    if (ec == http::error::header_limit) {
      return Reply(HttpResponse{431, "text/plain; charset=utf-8", "request headers too large\n"}, false, false);
    }
    if (ec == http::error::body_limit) {
      return Reply(HttpResponse{413, "text/plain; charset=utf-8",
                                absl::StrCat("request body over ", server_->options.max_body_bytes, " bytes\n")},
                   false, false);
    }
    if (ec == http::error::bad_target || ec == http::error::bad_method || ec == http::error::bad_version) {
      return Reply(HttpResponse{400, "text/plain; charset=utf-8", "malformed request\n"}, false, false);
    }
    if (ec) return Close();  // timeout, peer gone, or a malformed stream
    http::request<http::string_body> req = parser_->release();
    keep_alive_ = req.keep_alive();
    head_only_ = req.method() == http::verb::head;
    const std::string target(req.target());
    const std::string path = target.substr(0, target.find('?'));
    const HttpServer::Routes& routes = server_->routes;
    if (const auto it = routes.get.find(path); it != routes.get.end()) {
      if (req.method() != http::verb::get && !head_only_) {
        return Reply(HttpResponse{405, "text/plain; charset=utf-8", "only GET and HEAD\n"}, keep_alive_, false);
      }
      return Reply(it->second(HttpRequest{std::string(req.method_string()), target, {}, {}}), keep_alive_,
                   head_only_);
    }
    const HttpServer::AsyncHandler* handler = &routes.not_found;
    if (const auto it = routes.any.find(path); it != routes.any.end()) handler = &it->second;
    if (!*handler) {
      return Reply(HttpResponse{404, "text/plain; charset=utf-8", "not found; see /\n"}, keep_alive_, false);
    }
    HttpRequest request{std::string(req.method_string()), target, std::move(req.body()), {}};
    if (const auto auth = req.find(http::field::authorization); auth != req.end()) {
      request.authorization = std::string(auth->value());
    }
    beast::get_lowest_layer(stream_).expires_never();  // the handler's work has its own limits
    WatchGone();
    (*handler)(std::move(request),
               std::make_shared<SessionResponder>(server_->shared_from_this(), this->shared_from_this()));
  }

  // While a response is pending: notices the client closing the connection (readable with nothing to read).
  void WatchGone() {
    const uint64_t watch = watch_;
    Socket(stream_).async_wait(tcp::socket::wait_read, [self = this->shared_from_this(), watch](beast::error_code ec) {
      if (ec || watch != self->watch_ || self->ended_ || self->closed_) return;
      char byte;
      beast::error_code peek_ec;
      const size_t n = Socket(self->stream_).receive(asio::buffer(&byte, 1), tcp::socket::message_peek, peek_ec);
      if (peek_ec == asio::error::would_block) return self->WatchGone();
      if (peek_ec || n == 0) self->Close();  // gone; a byte (a pipelined request) is left for the next read
    });
  }

  void Enqueue(std::string bytes, std::function<void(WriteResult)> done, bool last) {
    writes_.push_back(Pending{std::move(bytes), std::move(done), last});
    if (!writing_) WriteNext();
  }

  void WriteNext() {
    writing_ = true;
    beast::get_lowest_layer(stream_).expires_after(Chrono(server_->options.write_timeout));
    asio::async_write(stream_, asio::buffer(writes_.front().bytes),
                      [self = this->shared_from_this()](beast::error_code ec, size_t) { self->OnWritten(ec); });
  }

  void OnWritten(beast::error_code ec) {
    Pending done = std::move(writes_.front());
    writes_.pop_front();
    writing_ = false;
    if (done.last && !ec) ended_ = true;
    if (done.done) {
      done.done(!ec ? WriteResult::kOk : ec == beast::error::timeout ? WriteResult::kTimedOut : WriteResult::kFailed);
    }
    if (ec) return Close();
    if (done.last) {
      if (keep_alive_) return Read();
      return Close();
    }
    if (!writes_.empty()) WriteNext();
  }

  void Reply(HttpResponse r, bool keep_alive, bool head_only) {
    ended_ = true;  // the response is on its way: the client leaving now is not "gone before the response"
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
    beast::get_lowest_layer(stream_).expires_after(Chrono(server_->options.request_timeout));
    auto done = [self = this->shared_from_this(), keep_alive](beast::error_code ec, size_t) {
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
    if (closed_) return;
    closed_ = true;
    beast::error_code ignored;
    Socket(stream_).shutdown(tcp::socket::shutdown_both, ignored);
    Socket(stream_).close(ignored);
    // Queued writes fail now; the one in flight fails in OnWritten.
    std::deque<Pending> failed;
    const size_t keep = writing_ ? 1 : 0;
    while (writes_.size() > keep) {
      failed.push_front(std::move(writes_.back()));
      writes_.pop_back();
    }
    for (Pending& p : failed) {
      if (p.done) p.done(WriteResult::kFailed);
    }
    if (!ended_ && gone_) {
      std::function<void()> gone = std::move(gone_);
      gone_ = nullptr;
      gone();
    }
  }

  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> response_;
  std::optional<http::response_serializer<http::string_body>> serializer_;
  HttpServer::Impl* const server_;
  bool keep_alive_ = false;
  bool head_only_ = false;
  bool ended_ = false;   // the current response is complete (or being sent whole)
  bool closed_ = false;
  uint64_t watch_ = 0;   // generation of WatchGone: one per request
  std::function<void()> gone_;
  std::deque<Pending> writes_;  // front: in flight while writing_
  bool writing_ = false;
};

absl::StatusOr<ssl::context> MakeTlsContext(const HttpServerOptions& o) {
  ssl::context ctx(ssl::context::tls_server);
  ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                  ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  beast::error_code ec;
  ctx.use_certificate_chain_file(o.tls_cert, ec);
  if (ec) return absl::InvalidArgumentError(absl::StrCat("--tls-cert ", o.tls_cert, ": ", ec.message()));
  ctx.use_private_key_file(o.tls_key, ssl::context::pem, ec);
  if (ec) return absl::InvalidArgumentError(absl::StrCat("--tls-key ", o.tls_key, ": ", ec.message()));
  if (!o.tls_client_ca.empty()) {
    ctx.load_verify_file(o.tls_client_ca, ec);
    if (ec) return absl::InvalidArgumentError(absl::StrCat("--tls-client-ca ", o.tls_client_ca, ": ", ec.message()));
    ctx.set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
  }
  return ctx;
}

}  // namespace

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
    beast::error_code ignored;
    if (connections.load() >= options.max_connections) {
      socket.close(ignored);
    } else {
      if (options.send_buffer_bytes > 0) {
        socket.set_option(asio::socket_base::send_buffer_size(options.send_buffer_bytes), ignored);
      }
      if (tls) {
        std::make_shared<Session<beast::ssl_stream<beast::tcp_stream>>>(this, std::move(socket), *tls)->Begin();
      } else {
        std::make_shared<Session<beast::tcp_stream>>(this, std::move(socket))->Begin();
      }
    }
    Accept();
  });
}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const std::string& host, int port,
                                                              std::map<std::string, Handler> routes,
                                                              HttpServerOptions options) {
  Routes r;
  r.get = std::move(routes);
  return Start(host, port, std::move(r), std::move(options));
}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const std::string& host, int port, Routes routes,
                                                              HttpServerOptions options) {
  auto impl = std::make_shared<Impl>();
  impl->options = options;
  impl->routes = std::move(routes);
  if (!options.tls_cert.empty()) {
    absl::StatusOr<ssl::context> ctx = MakeTlsContext(options);
    if (!ctx.ok()) return ctx.status();
    impl->tls.emplace(*std::move(ctx));
  }
  beast::error_code ec;
  const asio::ip::address address = asio::ip::make_address(host == "localhost" ? "127.0.0.1" : host, ec);
  if (ec) return absl::InvalidArgumentError(absl::StrCat(options.flag_name, ": host ", host, " is not an IP address"));
  const tcp::endpoint endpoint(address, static_cast<uint16_t>(port));
  impl->acceptor.open(endpoint.protocol(), ec);
  if (!ec) impl->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) impl->acceptor.bind(endpoint, ec);
  if (!ec) impl->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError(absl::StrCat(options.flag_name, ": cannot listen on ", host, ":", port, ": ",
                                               ec.message()));
  }
  impl->port = impl->acceptor.local_endpoint().port();
  impl->Accept();
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->io.run(); });
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

HttpServer::HttpServer(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() {
  // Pending operations (and with them the sessions) are destroyed with the io_context, when the last responder
  // lets go of it; posts after this never run.
  impl_->io.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

int HttpServer::port() const { return impl_->port; }
int HttpServer::open_connections() const { return impl_->connections.load(); }

}  // namespace moed::server
