// The real server in-process on 127.0.0.1:0 (fortune-moe, CPU backend) driven through a real gRPC
// channel: Generate (greedy = golden ids), Tokenize, GetModelInfo, GetExpertStats, health, invalid
// requests, cancellation, and the /metrics exposition checked by promtool.
#include "server/server.h"

#include <cstdio>
#include <fstream>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "moed/v1/moed.grpc.pb.h"

namespace moed::server {
namespace {

const std::string kModelDir = std::string(MOED_SOURCE_DIR) + "/models/fortune-moe";

nlohmann::json Golden() {
  std::ifstream in(kModelDir + "/golden.json");
  return nlohmann::json::parse(in);
}

std::string RunCommand(const std::string& cmd, int* rc) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return out;
  char buf[4096];
  size_t n = 0;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  *rc = pclose(p);
  return out;
}

class ServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ServerConfig config;
    config.model = kModelDir;
    config.host = "127.0.0.1";
    config.port = 0;
    config.metrics_port = 0;
    config.backend = "cpu";
    config.threads = 2;
    config.max_queue = 16;
    absl::StatusOr<std::unique_ptr<MoedServer>> server = MoedServer::Start(config);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = server->release();
    channel_ = new std::shared_ptr<grpc::Channel>(grpc::CreateChannel(
        JoinHostPort("127.0.0.1", server_->port()), grpc::InsecureChannelCredentials()));
  }
  static void TearDownTestSuite() {
    delete channel_;
    if (server_ != nullptr) server_->Shutdown(absl::Seconds(5));
    delete server_;
    server_ = nullptr;
  }

  std::unique_ptr<v1::Moed::Stub> Stub() { return v1::Moed::NewStub(*channel_); }

  // Runs one Generate to the end; returns the status and fills the messages.
  grpc::Status Generate(const v1::GenerateRequest& request, std::vector<v1::GenerateResponse>* messages) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    auto reader = Stub()->Generate(&context, request);
    v1::GenerateResponse msg;
    while (reader->Read(&msg)) messages->push_back(msg);
    return reader->Finish();
  }

  static MoedServer* server_;
  static std::shared_ptr<grpc::Channel>* channel_;
};
MoedServer* ServerTest::server_ = nullptr;
std::shared_ptr<grpc::Channel>* ServerTest::channel_ = nullptr;

TEST_F(ServerTest, StartupLineNamesModelFamilyBackendAndPorts) {
  const std::string line = server_->StartupLine();
  EXPECT_EQ(line, "moed: serving fortune-moe (mixtral, cpu) on 127.0.0.1:" + std::to_string(server_->port()) +
                      ", metrics on 127.0.0.1:" + std::to_string(server_->metrics_port()));
  EXPECT_GT(server_->port(), 0);
  EXPECT_GT(server_->metrics_port(), 0);
}

TEST_F(ServerTest, TokenizeMatchesGolden) {
  for (const auto& c : Golden()["cases"]) {
    grpc::ClientContext context;
    v1::TokenizeRequest request;
    request.set_text(c["prompt"].get<std::string>());
    v1::TokenizeResponse response;
    ASSERT_TRUE(Stub()->Tokenize(&context, request, &response).ok());
    EXPECT_EQ(std::vector<int>(response.token_ids().begin(), response.token_ids().end()),
              c["input_ids"].get<std::vector<int>>())
        << request.text();
  }
}

TEST_F(ServerTest, GreedyGenerateStreamsTheGoldenTokens) {
  const nlohmann::json c = Golden()["cases"][0];
  const std::vector<int> golden = c["greedy_ids"].get<std::vector<int>>();
  v1::GenerateRequest request;
  request.set_prompt(c["prompt"].get<std::string>());
  request.set_request_id("golden-0");
  request.set_include_routing(true);
  request.mutable_sampling()->set_temperature(0.0f);
  request.mutable_sampling()->set_max_tokens(static_cast<int>(golden.size()));
  request.mutable_sampling()->set_ignore_eos(true);
  request.mutable_sampling()->set_logprobs(2);
  std::vector<v1::GenerateResponse> messages;
  const grpc::Status status = Generate(request, &messages);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_FALSE(messages.empty());

  std::vector<int> ids;
  std::string text;
  for (size_t i = 0; i < messages.size(); ++i) {
    const v1::GenerateResponse& m = messages[i];
    EXPECT_EQ(m.request_id(), i == 0 ? "golden-0" : "") << i;  // echoed in the first message only
    ids.insert(ids.end(), m.token_ids().begin(), m.token_ids().end());
    text += m.text();
    ASSERT_EQ(m.logprobs_size(), m.token_ids_size());
    for (const auto& lp : m.logprobs()) {
      EXPECT_LE(lp.logprob(), 0.0f);
      ASSERT_EQ(lp.top_size(), 2);
      EXPECT_EQ(lp.top(0).token_id(), lp.token_id());  // greedy: the chosen token is the best
    }
  }
  EXPECT_EQ(ids, golden);
  EXPECT_EQ(text, c["greedy_text"].get<std::string>());
  const v1::GenerateResponse& last = messages.back();
  EXPECT_EQ(last.finish_reason(), "length");
  EXPECT_EQ(last.usage().prompt_tokens(), static_cast<int>(c["input_ids"].size()));
  EXPECT_EQ(last.usage().completion_tokens(), static_cast<int>(golden.size()));
  // Routing: every layer, top-2 per token, over prompt + generated tokens (the last token is not run).
  ASSERT_EQ(last.routing_size(), 4);
  for (const auto& layer : last.routing()) {
    int total = 0;
    for (int n : layer.token_counts()) total += n;
    EXPECT_EQ(total, 2 * (last.usage().prompt_tokens() + last.usage().completion_tokens() - 1))
        << "layer " << layer.layer();
  }
}

TEST_F(ServerTest, InvalidRequestsNameTheField) {
  v1::GenerateRequest request;
  std::vector<v1::GenerateResponse> messages;
  grpc::Status status = Generate(request, &messages);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("prompt"), std::string::npos);
  request.set_prompt("hello");
  request.mutable_sampling()->set_top_p(1.5f);
  status = Generate(request, &messages);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("sampling.top_p"), std::string::npos) << status.error_message();
  EXPECT_TRUE(messages.empty());
}

TEST_F(ServerTest, OversizedMessageIsRefusedByGrpc) {
  v1::GenerateRequest request;
  request.set_prompt(std::string(5 << 20, 'a'));  // over the default 4 MiB receive limit
  std::vector<v1::GenerateResponse> messages;
  const grpc::Status status = Generate(request, &messages);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
}

TEST_F(ServerTest, CancelMidStreamFreesTheSequence) {
  grpc::ClientContext context;
  v1::GenerateRequest request;
  request.set_prompt("Never trust a computer");
  request.mutable_sampling()->set_max_tokens(900);  // fortune-moe context: 1024
  request.mutable_sampling()->set_ignore_eos(true);
  auto reader = Stub()->Generate(&context, request);
  v1::GenerateResponse msg;
  ASSERT_TRUE(reader->Read(&msg));
  context.TryCancel();
  while (reader->Read(&msg)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  // The engine drops it within a step: nothing running, no KV blocks held, counted as cancelled.
  const std::string url = "http://127.0.0.1:" + std::to_string(server_->metrics_port()) + "/metrics";
  for (int i = 0; i < 300; ++i) {
    int rc = 0;
    const std::string metrics = RunCommand("curl -s " + url, &rc);
    if (metrics.find("moed_requests_running 0\n") != std::string::npos &&
        metrics.find("moed_kv_cache_blocks_used 0\n") != std::string::npos &&
        metrics.find("moed_requests_total{front=\"grpc\",status=\"cancelled\"} 1\n") != std::string::npos) {
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ADD_FAILURE() << "the cancelled request still holds the batch or KV blocks";
}

TEST_F(ServerTest, DeadlineEndsTheStreamAndIsCountedAsSuch) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(100));
  v1::GenerateRequest request;
  request.set_prompt("Never trust a computer");
  request.mutable_sampling()->set_max_tokens(1000);
  request.mutable_sampling()->set_ignore_eos(true);
  auto reader = Stub()->Generate(&context, request);
  v1::GenerateResponse msg;
  while (reader->Read(&msg)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  const std::string url = "http://127.0.0.1:" + std::to_string(server_->metrics_port()) + "/metrics";
  std::string metrics;
  for (int i = 0; i < 300; ++i) {
    int rc = 0;
    metrics = RunCommand("curl -s " + url, &rc);
    if (metrics.find("moed_requests_total{front=\"grpc\",status=\"deadline_exceeded\"} 1\n") != std::string::npos &&
        metrics.find("moed_requests_running 0\n") != std::string::npos) {
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::string requests;  // the moed_requests_* lines, for the failure message
  for (size_t pos = 0; (pos = metrics.find("\nmoed_requests", pos)) != std::string::npos; ++pos) {
    requests += metrics.substr(pos + 1, metrics.find('\n', pos + 1) - pos);
  }
  ADD_FAILURE() << "the expired request was not counted as deadline_exceeded or still runs:\n" << requests;
}

TEST_F(ServerTest, ModelInfoAndExpertStats) {
  grpc::ClientContext c1;
  v1::ModelInfo info;
  ASSERT_TRUE(Stub()->GetModelInfo(&c1, v1::GetModelInfoRequest(), &info).ok());
  EXPECT_EQ(info.family(), "mixtral");
  EXPECT_EQ(info.num_layers(), 4);
  EXPECT_EQ(info.num_experts(), 8);
  EXPECT_EQ(info.top_k(), 2);
  EXPECT_EQ(info.backend(), "cpu");
  EXPECT_EQ(info.vocab_size(), 4096);
  EXPECT_GT(info.context_length(), 0);
  EXPECT_EQ(info.max_tokens_limit(), info.context_length());
  EXPECT_EQ(std::vector<int>(info.eos_token_ids().begin(), info.eos_token_ids().end()), std::vector<int>{2});

  grpc::ClientContext c2;
  v1::ExpertStats stats;
  ASSERT_TRUE(Stub()->GetExpertStats(&c2, v1::GetExpertStatsRequest(), &stats).ok());
  EXPECT_EQ(stats.num_layers(), 4);
  EXPECT_EQ(stats.num_experts(), 8);
  EXPECT_EQ(stats.routed_tokens_size(), 32);
  EXPECT_EQ(stats.dropped_tokens_size(), 32);
  EXPECT_EQ(stats.resident_size(), 32);
}

// grpc.health.v1.Health/Check through a generic stub; the messages are tiny enough to encode by hand:
// HealthCheckRequest{string service = 1}, HealthCheckResponse{ServingStatus status = 1} (1 = SERVING).
int HealthStatus(const std::shared_ptr<grpc::Channel>& channel, const std::string& service) {
  std::string wire;
  if (!service.empty()) {
    wire.push_back(0x0a);
    wire.push_back(static_cast<char>(service.size()));
    wire += service;
  }
  grpc::Slice slice(wire);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  std::promise<grpc::Status> done;
  stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &response,
                 [&done](grpc::Status s) { done.set_value(s); });
  const grpc::Status status = done.get_future().get();
  if (!status.ok()) return -static_cast<int>(status.error_code());
  std::vector<grpc::Slice> slices;
  if (!response.Dump(&slices).ok()) return -100;
  std::string bytes;
  for (const grpc::Slice& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  if (bytes.size() == 2 && bytes[0] == 0x08) return bytes[1];
  return bytes.empty() ? 0 : -101;  // an empty message is status UNKNOWN (0)
}

TEST_F(ServerTest, HealthServesBothNames) {
  EXPECT_EQ(HealthStatus(*channel_, ""), 1);
  EXPECT_EQ(HealthStatus(*channel_, "moed.v1.Moed"), 1);
  EXPECT_EQ(HealthStatus(*channel_, "no.such.Service"), -static_cast<int>(grpc::StatusCode::NOT_FOUND));
}

TEST_F(ServerTest, MetricsExpositionPassesPromtool) {
  // Run one request first so histograms and counters carry data.
  v1::GenerateRequest request;
  request.set_prompt("Never trust a computer");
  request.mutable_sampling()->set_max_tokens(4);
  std::vector<v1::GenerateResponse> messages;
  ASSERT_TRUE(Generate(request, &messages).ok());
  int rc = 0;
  const std::string url = "http://127.0.0.1:" + std::to_string(server_->metrics_port()) + "/metrics";
  const std::string metrics = RunCommand("curl -sf " + url, &rc);
  ASSERT_EQ(rc, 0);
  for (const char* family : {"moed_requests_total{front=\"grpc\",status=\"ok\"}",
                             "moed_requests_rejected_total{front=\"grpc\",reason=\"queue_full\"}",
                             "moed_expert_tokens_total{expert=\"7\",layer=\"3\"}", "moed_expert_load_ratio_bucket",
                             "moed_expert_imbalance_ratio{layer=\"0\"}", "moed_engine_step_seconds_count{phase=\"mixed\"}",
                             "moed_info{backend=\"cpu\",family=\"mixtral\",model=\"fortune-moe\",model_name=\"fortune-moe\"} 1",
                             "moed_time_to_first_token_seconds_count", "moed_kv_cache_usage_ratio"}) {
    EXPECT_NE(metrics.find(family), std::string::npos) << family;
  }
  const std::string check = RunCommand("curl -sf " + url + " | promtool check metrics 2>&1", &rc);
  EXPECT_EQ(rc, 0) << check;
}

}  // namespace
}  // namespace moed::server
