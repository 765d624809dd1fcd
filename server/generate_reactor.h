// GenerateReactor: one streaming Generate call of the gRPC front end — convert, hand to the core, then
// write each output; counted and logged once by the core when the stream ends.
#pragma once

#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "moed/v1/moed.grpc.pb.h"
#include "server/engine_service.h"
#include "server/request_queue.h"

namespace moed::server {

// Created by the gRPC callback service; deletes itself in OnDone. Writes are driven through the
// Outbox writer token: Act() is called by whichever thread holds it (engine, pool or gRPC thread).
class GenerateReactor final : public grpc::ServerWriteReactor<grpc::ByteBuffer>, public StreamWriter {
 public:
  // `request`: the raw GenerateRequest bytes (parsed here; unparseable → INVALID_ARGUMENT); `caller`: the
  // authenticated caller, or why not (the call ends with that status).
  GenerateReactor(grpc::CallbackServerContext* context, const grpc::ByteBuffer& request, EngineService* core,
                  const absl::StatusOr<Caller>& caller);

  void Act(OutboxAction action) override;
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  // The status a call that ended early (cancelled, or a write failed) is counted with: deadline or cancel.
  absl::Status WhyTheCallEnded() const;
  void Note(const RequestOutput& out);  // record what the log line needs
  void Start(const v1::GenerateRequest& request, const Caller& caller);
  void Refuse(const absl::Status& status);  // finishes the call before anything was handed to the core

  grpc::CallbackServerContext* const context_;
  EngineService* const core_;
  std::shared_ptr<Outbox> outbox_;
  uint64_t number_ = 0;
  bool accepted_ = false;  // the core took the request; its outbox now drives the call
  absl::Time deadline_ = absl::InfiniteFuture();
  int logprobs_ = 0;
  std::string first_id_;   // echoed in the first message only; cleared after it
  RequestRecord record_;
  absl::Time arrival_;
  absl::Status finish_status_;
  v1::GenerateResponse message_;   // scratch for the next response
  grpc::ByteBuffer response_;      // the message in flight; owned until OnWriteDone
};

}  // namespace moed::server
