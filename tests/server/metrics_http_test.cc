// MetricsHttpServer over real loopback sockets: /metrics renders the registry, other paths and methods are
// refused with the right status, clients that vanish do not stop the endpoint, and it binds an ephemeral port.
#include "server/metrics_http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "prometheus/counter.h"
#include "prometheus/registry.h"

namespace moed::server {
namespace {

int Connect(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  return fd;
}

// Sends `request` and reads until the server closes the connection.
std::string Exchange(int port, const std::string& request) {
  const int fd = Connect(port);
  EXPECT_EQ(send(fd, request.data(), request.size(), 0), static_cast<ssize_t>(request.size()));
  std::string out;
  char buf[4096];
  ssize_t n = 0;
  while ((n = recv(fd, buf, sizeof buf, 0)) > 0) out.append(buf, static_cast<size_t>(n));
  close(fd);
  return out;
}

class MetricsHttpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    registry_ = std::make_shared<prometheus::Registry>();
    counter_ = &prometheus::BuildCounter().Name("moed_test_total").Help("a test counter").Register(*registry_).Add({});
    auto server = MetricsHttpServer::Start("127.0.0.1", 0, registry_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    ASSERT_GT(server_->port(), 0);
  }

  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Counter* counter_ = nullptr;
  std::unique_ptr<MetricsHttpServer> server_;
};

TEST_F(MetricsHttpTest, GetMetricsRendersTheRegistryEachTime) {
  counter_->Increment(3);
  std::string reply = Exchange(server_->port(), "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(reply.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << reply;
  EXPECT_NE(reply.find("Content-Type: text/plain; version=0.0.4"), std::string::npos);
  EXPECT_NE(reply.find("moed_test_total 3"), std::string::npos) << reply;
  const size_t body_start = reply.find("\r\n\r\n") + 4;
  EXPECT_NE(reply.find("Content-Length: " + std::to_string(reply.size() - body_start)), std::string::npos);

  counter_->Increment(2);
  reply = Exchange(server_->port(), "GET /metrics?x=1 HTTP/1.0\r\n\r\n");
  EXPECT_NE(reply.find("moed_test_total 5"), std::string::npos) << reply;
}

TEST_F(MetricsHttpTest, HeadHasHeadersOnly) {
  const std::string reply = Exchange(server_->port(), "HEAD /metrics HTTP/1.1\r\n\r\n");
  EXPECT_EQ(reply.rfind("HTTP/1.1 200 OK\r\n", 0), 0u);
  EXPECT_EQ(reply.find("moed_test_total"), std::string::npos);
}

TEST_F(MetricsHttpTest, OtherPathsMethodsAndGarbageAreRefused) {
  EXPECT_EQ(Exchange(server_->port(), "GET / HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 404", 0), 0u);
  EXPECT_EQ(Exchange(server_->port(), "POST /metrics HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 405", 0), 0u);
  EXPECT_EQ(Exchange(server_->port(), "nonsense\r\n\r\n").rfind("HTTP/1.1 400", 0), 0u);
  const std::string huge = "GET /metrics HTTP/1.1\r\nX: " + std::string(40000, 'a');
  EXPECT_EQ(Exchange(server_->port(), huge).rfind("HTTP/1.1 431", 0), 0u);
}

TEST_F(MetricsHttpTest, ClientsThatHangUpDoNotStopTheEndpoint) {
  for (int i = 0; i < 5; ++i) close(Connect(server_->port()));
  const int half = Connect(server_->port());
  send(half, "GET /met", 8, 0);
  close(half);
  EXPECT_EQ(Exchange(server_->port(), "GET /metrics HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 200 OK", 0), 0u);
}

TEST(MetricsHttpStartTest, AnAddressInUseIsNamed) {
  auto registry = std::make_shared<prometheus::Registry>();
  auto first = MetricsHttpServer::Start("127.0.0.1", 0, registry);
  ASSERT_TRUE(first.ok());
  auto second = MetricsHttpServer::Start("127.0.0.1", (*first)->port(), registry);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("--metrics-port"), std::string::npos) << second.status();
  EXPECT_NE(second.status().message().find("127.0.0.1:" + std::to_string((*first)->port())), std::string::npos);
}

}  // namespace
}  // namespace moed::server
