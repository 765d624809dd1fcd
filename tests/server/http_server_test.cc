// HttpServer over real loopback sockets: routes, 404/405, HEAD, keep-alive, `/`-style routes, a whole-request
// deadline that a byte-at-a-time client cannot extend, and many idle connections not delaying a request.
#include "server/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace moed::server {
namespace {

int Connect(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  timeval tv{30, 0};  // a test that hangs fails instead
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

void Send(int fd, const std::string& s) {
  ASSERT_EQ(send(fd, s.data(), s.size(), MSG_NOSIGNAL), static_cast<ssize_t>(s.size()));
}

// Reads one response (headers + Content-Length body), or "" at EOF.
std::string ReadResponse(int fd) {
  std::string out;
  char c;
  while (out.find("\r\n\r\n") == std::string::npos) {
    if (recv(fd, &c, 1, 0) != 1) return out;
    out.push_back(c);
  }
  size_t length = 0;
  const size_t at = out.find("Content-Length: ");
  if (at != std::string::npos) length = std::stoul(out.substr(at + 16));
  if (out.find(" 200 ") != std::string::npos && out.rfind("HEAD", 0) == 0) return out;
  std::string body(length, '\0');
  size_t got = 0;
  while (got < length) {
    const ssize_t n = recv(fd, body.data() + got, length - got, 0);
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  return out + body.substr(0, got);
}

bool ClosedByPeer(int fd) {
  char c;
  return recv(fd, &c, 1, 0) == 0;
}

std::unique_ptr<HttpServer> StartServer(HttpServerOptions options = {}) {
  std::map<std::string, HttpServer::Handler> routes;
  routes["/metrics"] = [](const HttpRequest&) { return HttpResponse{200, "text/plain", "metric_a 1\n"}; };
  routes["/"] = [](const HttpRequest&) { return HttpResponse{200, "text/plain", "index\n"}; };
  auto server = HttpServer::Start("127.0.0.1", 0, routes, options);
  EXPECT_TRUE(server.ok()) << server.status();
  return std::move(*server);
}

TEST(HttpServer, RoutesStatusesAndKeepAlive) {
  auto server = StartServer();
  ASSERT_GT(server->port(), 0);
  const int fd = Connect(server->port());
  Send(fd, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string r = ReadResponse(fd);
  EXPECT_NE(r.find("HTTP/1.1 200 OK"), std::string::npos) << r;
  EXPECT_NE(r.find("metric_a 1\n"), std::string::npos) << r;
  // The same connection serves the next requests (keep-alive).
  Send(fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_NE(ReadResponse(fd).find("index\n"), std::string::npos);
  Send(fd, "GET /nope?x=1 HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_NE(ReadResponse(fd).find("404"), std::string::npos);
  Send(fd, "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
  EXPECT_NE(ReadResponse(fd).find("405"), std::string::npos);
  Send(fd, "GET /metrics?name=x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_NE(ReadResponse(fd).find("metric_a"), std::string::npos);
  EXPECT_TRUE(ClosedByPeer(fd));
  close(fd);
}

TEST(HttpServer, HeadSendsHeadersOnly) {
  auto server = StartServer();
  const int fd = Connect(server->port());
  Send(fd, "HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  std::string all;
  char buf[512];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof buf, 0)) > 0) all.append(buf, static_cast<size_t>(n));
  close(fd);
  EXPECT_NE(all.find("Content-Length: 11"), std::string::npos) << all;
  EXPECT_EQ(all.find("metric_a"), std::string::npos) << all;
}

TEST(HttpServer, OversizedHeadersAreRefused) {
  auto server = StartServer(HttpServerOptions{.max_header_bytes = 1024});
  const int fd = Connect(server->port());
  Send(fd, "GET /metrics HTTP/1.1\r\nX-Big: " + std::string(4096, 'a') + "\r\n\r\n");
  EXPECT_NE(ReadResponse(fd).find("431"), std::string::npos);
  close(fd);
}

// A client dribbling one byte at a time is cut when its request deadline passes, however often it sends.
TEST(HttpServer, SlowlorisIsCutAtTheRequestDeadline) {
  auto server = StartServer(HttpServerOptions{.request_timeout = absl::Milliseconds(300)});
  const int fd = Connect(server->port());
  const std::string partial = "GET /metrics HTTP/1.1\r\nX-Slow: ";
  const auto start = std::chrono::steady_clock::now();
  bool cut = false;
  for (int i = 0; i < 200 && !cut; ++i) {  // up to 200 × 50 ms = 10 s of dribbling
    if (send(fd, i < static_cast<int>(partial.size()) ? &partial[i] : "a", 1, MSG_NOSIGNAL) != 1) cut = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    char c;
    if (recv(fd, &c, 1, MSG_DONTWAIT) == 0) cut = true;
  }
  EXPECT_TRUE(cut);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  close(fd);
}

TEST(HttpServer, IdleConnectionsDoNotDelayARequest) {
  auto server = StartServer();
  std::vector<int> idle;
  for (int i = 0; i < 50; ++i) idle.push_back(Connect(server->port()));
  Send(idle[0], "GET /metrics HTTP/1.1\r\n");  // and one half-sent request
  const int fd = Connect(server->port());
  Send(fd, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_NE(ReadResponse(fd).find("metric_a"), std::string::npos);  // SO_RCVTIMEO: within 30 s or fails
  close(fd);
  for (int f : idle) close(f);
}

TEST(HttpServer, ConnectionsOverTheCapAreClosed) {
  auto server = StartServer(HttpServerOptions{.max_connections = 2});
  const int a = Connect(server->port());
  const int b = Connect(server->port());
  Send(a, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  Send(b, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_NE(ReadResponse(a).find("index"), std::string::npos);  // both are accepted and served
  ASSERT_NE(ReadResponse(b).find("index"), std::string::npos);
  const int c = Connect(server->port());
  EXPECT_TRUE(ClosedByPeer(c));
  close(a);
  close(b);
  close(c);
}

// Reads until `marker` has arrived (or EOF / the 30 s receive timeout).
std::string ReadUntil(int fd, const std::string& marker) {
  std::string out;
  char buf[4096];
  while (out.find(marker) == std::string::npos) {
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

TEST(HttpServer, AsyncResponsesAndChunkedStreamsFromOtherThreads) {
  HttpServer::Routes routes;
  std::vector<std::thread> threads;
  routes.any["/whole"] = [&](HttpRequest req, std::shared_ptr<HttpResponder> out) {
    threads.emplace_back([req, out] { out->Respond(HttpResponse{200, "text/plain", "got " + req.body}); });
  };
  routes.any["/stream"] = [&](HttpRequest, std::shared_ptr<HttpResponder> out) {
    threads.emplace_back([out] {
      out->StartStream(200, "text/event-stream");
      for (int i = 0; i < 3; ++i) out->Write("data: " + std::to_string(i) + "\n\n", nullptr);
      out->EndStream();
    });
  };
  auto server = HttpServer::Start("127.0.0.1", 0, routes);
  ASSERT_TRUE(server.ok()) << server.status();
  const int fd = Connect((*server)->port());
  Send(fd, "POST /whole HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
  EXPECT_NE(ReadResponse(fd).find("got hello"), std::string::npos);
  // "Expect: 100-continue" gets its interim answer before the body is sent.
  Send(fd, "POST /whole HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n");
  EXPECT_EQ(ReadUntil(fd, "\r\n\r\n"), "HTTP/1.1 100 Continue\r\n\r\n");
  Send(fd, "abc");
  EXPECT_NE(ReadResponse(fd).find("got abc"), std::string::npos);
  Send(fd, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");  // the same connection: kept alive
  const std::string r = ReadUntil(fd, "0\r\n\r\n");
  EXPECT_NE(r.find("Transfer-Encoding: chunked"), std::string::npos) << r;
  EXPECT_NE(r.find("9\r\ndata: 0\n\n\r\n9\r\ndata: 1\n\n\r\n9\r\ndata: 2\n\n\r\n0\r\n\r\n"), std::string::npos) << r;
  Send(fd, "GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_NE(ReadResponse(fd).find(" 404 "), std::string::npos);
  close(fd);
  server->reset();
  for (std::thread& t : threads) t.join();
}

TEST(HttpServer, StalledStreamWriteTimesOutAndTheClientGoneIsReported) {
  HttpServer::Routes routes;
  std::atomic<int> gone{0};
  std::promise<WriteResult> stalled;
  std::shared_ptr<HttpResponder> held;
  routes.any["/flood"] = [&](HttpRequest, std::shared_ptr<HttpResponder> out) {
    held = out;
    out->OnClientGone([&] { ++gone; });
    out->StartStream(200, "text/event-stream");
    // 16 MiB to a client that never reads (more than both sockets buffer): a write stalls past the timeout.
    auto reported = std::make_shared<bool>(false);
    for (int i = 0; i < 16; ++i) {
      out->Write(std::string(1 << 20, 'x'), [&, reported](WriteResult r) {
        if (r != WriteResult::kOk && !*reported) {
          *reported = true;
          stalled.set_value(r);
        }
      });
    }
  };
  HttpServerOptions options;
  options.write_timeout = absl::Milliseconds(300);
  options.send_buffer_bytes = 64 << 10;
  auto server = HttpServer::Start("127.0.0.1", 0, routes, options);
  ASSERT_TRUE(server.ok()) << server.status();
  const int fd = Connect((*server)->port());
  Send(fd, "GET /flood HTTP/1.1\r\nHost: x\r\n\r\n");
  std::future<WriteResult> result = stalled.get_future();
  ASSERT_EQ(result.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  EXPECT_EQ(result.get(), WriteResult::kTimedOut);
  close(fd);
  server->reset();
  EXPECT_EQ(gone.load(), 1);
}

TEST(HttpServer, BadAddressAndPortInUse) {
  EXPECT_FALSE(HttpServer::Start("not-an-ip", 0, HttpServer::Routes{}).ok());
  auto first = StartServer();
  auto second = HttpServer::Start("127.0.0.1", first->port(), HttpServer::Routes{});
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("cannot listen"), std::string::npos);
}

}  // namespace
}  // namespace moed::server
