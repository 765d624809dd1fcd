// ValidateStepBatch: each check at its boundary (the last good value passes, the first bad one is refused with
// INVALID_ARGUMENT naming the sequence and the field), and the CPU backend's Step refusing through it.
#include "engine/backend/batch_validation.h"

#include <string>

#include <gtest/gtest.h>

#include "engine/backend/cpu/cpu_backend.h"
#include "tests/unit/backend/random_model.h"

namespace moed {
namespace {

constexpr int kBlocks = 4;
constexpr int kBlockSize = 8;

ModelSpec Spec() {
  ModelSpec s;
  s.vocab_size = 50;
  return s;
}

// One sequence of ids {0, 1, 49} at positions 5..7: exactly one block needed, block kBlocks - 1.
StepBatch Good() {
  StepBatch b;
  b.token_ids = {0, 1, 49};
  SequenceStep q;
  q.seq_id = 42;
  q.num_tokens = 3;
  q.start_pos = 5;
  q.block_table = {kBlocks - 1};
  b.seqs.push_back(q);
  return b;
}

void ExpectRefused(const StepBatch& b, const std::string& needle) {
  const absl::Status s = ValidateStepBatch(b, Spec(), kBlocks, kBlockSize);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(std::string(s.message()).find("seq 0 (id 42): " + needle), std::string::npos) << s;
}

TEST(BatchValidation, TheLastGoodValueOfEveryFieldPasses) {
  EXPECT_TRUE(ValidateStepBatch(Good(), Spec(), kBlocks, kBlockSize).ok());
  StepBatch none;  // nothing to compute
  EXPECT_TRUE(ValidateStepBatch(none, Spec(), kBlocks, kBlockSize).ok());
  StepBatch stray = Good();  // an id in no sequence is not computed, so not checked
  stray.token_ids.push_back(-7);
  EXPECT_TRUE(ValidateStepBatch(stray, Spec(), kBlocks, kBlockSize).ok());
}

TEST(BatchValidation, EachFieldIsRefusedPastItsBoundary) {
  StepBatch b = Good();
  b.token_ids[2] = 50;
  ExpectRefused(b, "token id 50 outside the vocabulary [0, 50)");
  b = Good();
  b.token_ids[0] = -1;
  ExpectRefused(b, "token id -1 outside the vocabulary");
  b = Good();
  b.seqs[0].num_tokens = 0;
  ExpectRefused(b, "num_tokens must be ≥ 1, got 0");
  b = Good();
  b.seqs[0].token_offset = 1;  // [1, 4) of 3 ids
  ExpectRefused(b, "tokens [1, 4) outside the batch's 3 token ids");
  b = Good();
  b.seqs[0].token_offset = -1;
  ExpectRefused(b, "tokens [-1, 2) outside");
  b = Good();
  b.seqs[0].start_pos = -1;
  ExpectRefused(b, "start_pos -1 < 0");
  b = Good();
  b.seqs[0].start_pos = 6;  // positions up to 8 need a second block
  ExpectRefused(b, "block table has 1 blocks, positions [0, 9) need 2");
  b = Good();
  b.seqs[0].block_table[0] = kBlocks;
  ExpectRefused(b, "block_table[0] = 4 outside [0, 4)");
  b = Good();
  b.seqs[0].block_table[0] = -1;
  ExpectRefused(b, "block_table[0] = -1 outside [0, 4)");
  b = Good();
  b.seqs[0].sample = true;
  b.seqs[0].sampling.top_p = 0.0f;
  ExpectRefused(b, "top_p");
}

TEST(BatchValidation, NamesTheSequenceByIndexAndIdAndNeedsAKvCache) {
  StepBatch b = Good();
  SequenceStep second = b.seqs[0];
  second.seq_id = 7;
  second.num_tokens = 1;
  second.token_offset = 3;  // one past the ids
  b.seqs.push_back(second);
  const absl::Status s = ValidateStepBatch(b, Spec(), kBlocks, kBlockSize);
  EXPECT_NE(std::string(s.message()).find("seq 1 (id 7): tokens [3, 4)"), std::string::npos) << s;
  EXPECT_EQ(ValidateStepBatch(Good(), Spec(), 0, kBlockSize).code(), absl::StatusCode::kFailedPrecondition);
}

TEST(BatchValidation, TheCpuBackendRefusesThroughIt) {
  auto model = test_models::MakeRandomModel({});
  auto cpu = cpu::CpuBackend::Create(model, {});
  ASSERT_TRUE(cpu.ok());
  StepBatch b;
  b.token_ids = {model->spec.vocab_size};
  SequenceStep q;
  q.seq_id = 3;
  q.num_tokens = 1;
  q.block_table = {0};
  b.seqs.push_back(q);
  StepOutput out;
  EXPECT_EQ((*cpu)->Step(b, &out).code(), absl::StatusCode::kFailedPrecondition);  // before InitKvCache
  ASSERT_TRUE((*cpu)->InitKvCache({kBlocks, kBlockSize}).ok());
  const absl::Status s = (*cpu)->Step(b, &out);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(s.message()).find("seq 0 (id 3): token id"), std::string::npos) << s;
}

}  // namespace
}  // namespace moed
