// One streaming Generate call of moe-bench, driven by the gRPC callback API.
#include "client/grpc/bench_call.h"

namespace moed::client {
namespace {

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

BenchCall::BenchCall(moed::v1::Moed::Stub& stub, const moed::v1::GenerateRequest& request,
                     Clock::duration timeout, std::function<void(CallResult)> on_done)
    : request_(request), on_done_(std::move(on_done)) {
  start_ = Clock::now();
  last_ = start_;
  if (timeout > Clock::duration::zero()) {
    ctx_.set_deadline(std::chrono::system_clock::now() +
                      std::chrono::duration_cast<std::chrono::system_clock::duration>(timeout));
  }
  stub.async()->Generate(&ctx_, &request_, this);
  StartRead(&msg_);
  StartCall();
}

void BenchCall::OnReadDone(bool ok) {
  if (!ok) return;  // end of stream: OnDone follows
  const Clock::time_point now = Clock::now();
  const int k = msg_.token_ids_size();
  if (k > 0) {
    if (result_.ttft_s < 0) {
      // Tokens that arrive together with the first one have no measurable gap of their own.
      result_.ttft_s = Seconds(now - start_);
    } else {
      const double gap = Seconds(now - last_) / k;
      for (int i = 0; i < k; ++i) result_.itl_s.push_back(gap);
    }
    last_ = now;
    result_.output_tokens += k;
  }
  if (msg_.has_usage()) {
    result_.prompt_tokens = msg_.usage().prompt_tokens();
    result_.cached_tokens = msg_.usage().cached_tokens();
  }
  StartRead(&msg_);
}

void BenchCall::OnDone(const grpc::Status& status) {
  result_.e2e_s = Seconds(Clock::now() - start_);
  result_.code = status.error_code();
  if (!status.ok()) result_.error = status.error_message();
  std::function<void(CallResult)> done = std::move(on_done_);
  CallResult result = std::move(result_);
  delete this;
  done(std::move(result));
}

}  // namespace moed::client
