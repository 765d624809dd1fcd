// GenerateReactor: one streaming Generate call — validate, tokenize, submit, then write each output.
#pragma once

#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "moed/v1/moed.grpc.pb.h"
#include "server/request_queue.h"
#include "server/service_context.h"

namespace moed::server {

// Created by the gRPC callback service; deletes itself in OnDone. Writes are driven through the
// Outbox writer token: Act() is called by whichever thread holds it (engine thread or gRPC thread).
class GenerateReactor final : public grpc::ServerWriteReactor<v1::GenerateResponse>, public StreamWriter {
 public:
  GenerateReactor(grpc::CallbackServerContext* context, const v1::GenerateRequest* request, ServiceContext* service);

  void Act(OutboxAction action) override;
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  // The status a call that ended early (cancelled, or a write failed) is counted with: deadline or cancel.
  absl::Status WhyTheCallEnded() const;
  // Rejects before submission: counts the request and finishes the call.
  void Reject(const absl::Status& status, RejectReason reason);
  void FillResponse(const RequestOutput& out);

  grpc::CallbackServerContext* const context_;
  ServiceContext* const service_;
  std::shared_ptr<Outbox> outbox_;
  std::string engine_id_;  // unique id in the engine
  std::string client_id_;  // echoed in responses (the engine id when the client gave none)
  bool submitted_ = false;
  absl::Time deadline_ = absl::InfiniteFuture();
  v1::GenerateResponse response_;  // the message in flight; owned until OnWriteDone
};

}  // namespace moed::server
