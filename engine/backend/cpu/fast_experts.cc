// RunFfnJobs: per-job activations, then gate/up and down row chunks balanced over the threads.
#include "engine/backend/cpu/fast_experts.h"

#include <algorithm>

#include "engine/backend/cpu/kernels/activation.h"
#include "engine/backend/cpu/ops.h"

namespace moed::cpu {
namespace {

// A slice of one job's weight rows, [r0, r1).
struct Chunk {
  int job;
  int64_t r0, r1;
  int64_t cost;  // multiply-adds
};

// Cuts rows [0, rows) of every job into chunks (a multiple of 8 rows each) about `target` multiply-adds big, and
// at least `min_bytes` of each weight matrix: a chunk streams its gate rows, then its up rows, and each switch
// restarts the hardware prefetcher (mixtral-224m decode at batch 32, ~8 tokens per expert, ran 8–10% faster with
// 256 KB chunks than with the 16 KB that the multiply-add target alone gives).
std::vector<Chunk> MakeChunks(const std::vector<FfnJob>& jobs, bool down, int64_t hidden, int64_t target,
                              int64_t min_bytes) {
  std::vector<Chunk> chunks;
  for (size_t j = 0; j < jobs.size(); ++j) {
    const int64_t rows = down ? hidden : jobs[j].w->width;
    const int64_t per_row = jobs[j].n * (down ? jobs[j].w->width : 2 * hidden);
    const WeightMatrix& m = down ? jobs[j].w->down : jobs[j].w->gate;
    const int64_t row_bytes = std::max<int64_t>(1, m.cols * DTypeSize(m.dtype));
    int64_t step = std::max<int64_t>({8, target / std::max<int64_t>(1, per_row), min_bytes / row_bytes});
    step = (step + 7) / 8 * 8;
    for (int64_t r = 0; r < rows; r += step) {
      const int64_t e = std::min(rows, r + step);
      chunks.push_back({static_cast<int>(j), r, e, (e - r) * per_row});
    }
  }
  return chunks;
}

// Calls run(chunk) for every chunk; with a pool, the chunk list is cut into pool->size() contiguous parts of about
// equal cost, one per thread.
template <class F>
void RunChunks(const std::vector<Chunk>& chunks, ThreadPool* pool, F&& run) {
  int64_t total = 0;
  for (const Chunk& c : chunks) total += c.cost;
  // Below ~256K multiply-adds (~0.5 MB of bf16 weights, tens of µs) a thread hand-off costs about what it saves.
  if (pool == nullptr || pool->size() == 1 || total < (1 << 18) || chunks.size() < 2) {
    for (const Chunk& c : chunks) run(c);
    return;
  }
  const int parts = pool->size();
  std::vector<size_t> begin(parts + 1, chunks.size());
  begin[0] = 0;
  int64_t acc = 0;
  int part = 1;
  for (size_t i = 0; i < chunks.size() && part < parts; ++i) {
    acc += chunks[i].cost;
    while (part < parts && acc * parts >= total * part) begin[part++] = i + 1;
  }
  pool->ParallelFor(parts, [&](int64_t pb, int64_t pe) {
    for (int64_t p = pb; p < pe; ++p) {
      for (size_t i = begin[p]; i < begin[p + 1]; ++i) run(chunks[i]);
    }
  });
}

// Per job: its prepared input, the activations silu(gate·x) ⊙ up·x (n, width) and their bf16 rounding when the
// down projection takes the bf16 dot kernel.
struct JobState {
  LinearInput in;
  InputScratch x_scratch;
  std::vector<float> act, up;
  std::vector<uint16_t> act_bf16;  // when the down projection takes the bf16 dot kernel
  std::vector<float> act_split;    // when it reads the pair-split layout
};

}  // namespace

void RunFfnJobs(const KernelConfig& cfg, const std::vector<FfnJob>& jobs, int64_t hidden, ThreadPool* pool) {
  std::vector<JobState> st(jobs.size());
  for (size_t j = 0; j < jobs.size(); ++j) {
    const FfnJob& job = jobs[j];
    const int64_t width = job.w->width;
    st[j].in = PrepareInput(job.x, job.n, hidden, job.w->gate, cfg, &st[j].x_scratch);
    st[j].act.resize(job.n * width);
    st[j].up.resize(job.n * width);
    if (UsesBf16Dot(cfg, job.w->down, job.n)) {
      st[j].act_bf16.resize(job.n * width);
    } else if (UsesSplitInput(cfg.isa, job.w->down, job.n)) {
      st[j].act_split.resize(job.n * width);
    }
  }
  const int64_t target = int64_t{1} << 17, min_bytes = int64_t{256} << 10;
  RunChunks(MakeChunks(jobs, /*down=*/false, hidden, target, min_bytes), pool, [&](const Chunk& c) {
    const FfnJob& job = jobs[c.job];
    JobState& s = st[c.job];
    const int64_t width = job.w->width;
    LinearRows(cfg.isa, s.in, job.w->gate, c.r0, c.r1, s.act.data(), width);
    LinearRows(cfg.isa, s.in, job.w->up, c.r0, c.r1, s.up.data(), width);
    for (int64_t t = 0; t < job.n; ++t) {
      float* a = s.act.data() + t * width;
      const float* u = s.up.data() + t * width;
      SiluMul(cfg.isa, a + c.r0, u + c.r0, c.r1 - c.r0, a + c.r0);
      if (!s.act_bf16.empty()) RoundToBf16(a + c.r0, c.r1 - c.r0, s.act_bf16.data() + t * width + c.r0);
      if (!s.act_split.empty()) {
        float* split = s.act_split.data() + t * width;
        for (int64_t r = c.r0; r < c.r1; ++r) split[SplitIndex(r)] = a[r];
      }
    }
  });
  RunChunks(MakeChunks(jobs, /*down=*/true, hidden, target, min_bytes), pool, [&](const Chunk& c) {
    const FfnJob& job = jobs[c.job];
    const JobState& s = st[c.job];
    const LinearInput act{s.act.data(), s.act_bf16.empty() ? nullptr : s.act_bf16.data(), job.n, job.w->width,
                          s.act_split.empty() ? nullptr : s.act_split.data()};
    LinearRows(cfg.isa, act, job.w->down, c.r0, c.r1, job.y, hidden);
  });
}

void RunRoutedExpertsFast(const KernelConfig& cfg, const std::vector<FfnMatrices>& weights, const float* x,
                          int num_tokens, int64_t hidden, const int32_t* experts, const float* routing_weights,
                          const uint8_t* kept, int top_k, float* out, ThreadPool* pool) {
  const int num_experts = static_cast<int>(weights.size());
  const std::vector<std::vector<int32_t>> assigned = AssignmentsByExpert(experts, kept, num_tokens, top_k, num_experts);
  std::vector<std::vector<float>> gathered(num_experts), results(num_experts);
  std::vector<FfnJob> jobs;
  for (int e = 0; e < num_experts; ++e) {
    const std::vector<int32_t>& rows = assigned[e];
    if (rows.empty()) continue;
    const int64_t n = static_cast<int64_t>(rows.size());
    gathered[e].resize(n * hidden);
    GatherAssignedRows(x, rows, top_k, hidden, gathered[e].data());
    results[e].resize(n * hidden);
    jobs.push_back({&weights[e], gathered[e].data(), n, results[e].data()});
  }
  RunFfnJobs(cfg, jobs, hidden, pool);
  AddWeightedExpertOutputs(assigned, results, routing_weights, top_k, hidden, out);
}

}  // namespace moed::cpu
