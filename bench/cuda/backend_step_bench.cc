// The whole CUDA backend on full-size synthetic models (weights generated on the device): decode steps at
// batch 1/16/64 and one prefill of 2048 tokens. Decode floor = bytes read per step (non-expert weights, experts
// touched in the step, LM head, KV) / copy bandwidth; prefill floor = FLOPs / bf16 rate. Both measured here.
// Each model runs once per path (one backend at a time): "new" = the defaults (grouped MoE, flash-decoding, decode
// CUDA graphs, radix sampling), "reference" = per-expert cuBLAS MoE, simple attention, eager steps, bisection sampling.
// Also the attention of that prefill alone (every layer's, one sequence of --prefill tokens from position 0),
// tensor-core tiles ("new", flash_prefill.h) against the simple kernel ("reference"); floor = causal FLOPs / bf16 rate.
// Usage: gpu-backend-step-bench [--models olmoe-1b-7b,qwen3-30b-a3b] [--batches 1,16,64] [--context 512]
//        [--prefill 2048] [--skew 1.0] [--steps 20] [--paths new,reference] [--json FILE]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "bench/cuda/device_floor.h"
#include "engine/backend/cuda/attention.h"
#include "engine/backend/cuda/cuda_backend.h"
#include "engine/backend/cuda/cuda_check.h"
#include "engine/backend/cuda/device_buffer.h"
#include "engine/backend/cuda/flash_prefill.h"
#include "engine/backend/cuda/synthetic_fill.h"
#include "engine/common/status_macros.h"
#include "engine/model/synthetic_model.h"

namespace moed::bench {
namespace {

struct Args {
  std::vector<std::string> models = {"olmoe-1b-7b", "qwen3-30b-a3b"};
  std::vector<int> batches = {1, 16, 64};
  int context = 512;  // tokens already in each sequence's KV cache when decoding
  int prefill = 2048;
  float skew = 1.0f;
  int steps = 20;
  std::vector<std::string> paths = {"new", "reference"};
  std::string json;  // rows written here as JSON (device_floor.h)
};

absl::StatusOr<std::vector<int>> IntList(absl::string_view v) {
  std::vector<int> out;
  for (absl::string_view t : absl::StrSplit(v, ',')) {
    int n = 0;
    if (!absl::SimpleAtoi(t, &n) || n < 1) return absl::InvalidArgumentError("bad count '" + std::string(t) + "'");
    out.push_back(n);
  }
  return out;
}

absl::StatusOr<Args> ParseArgs(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], v = argv[i + 1];
    if (flag == "--json") {
      a.json = v;
    } else if (flag == "--models") {
      a.models = absl::StrSplit(v, ',');
    } else if (flag == "--paths") {
      a.paths = absl::StrSplit(v, ',');
      for (const std::string& p : a.paths) {
        if (p != "new" && p != "reference") return absl::InvalidArgumentError("--paths: new or reference, got " + p);
      }
    } else if (flag == "--batches") {
      MOED_ASSIGN_OR_RETURN(a.batches, IntList(v));
    } else if (flag == "--context" && absl::SimpleAtoi(v, &a.context)) {
    } else if (flag == "--prefill" && absl::SimpleAtoi(v, &a.prefill)) {
    } else if (flag == "--steps" && absl::SimpleAtoi(v, &a.steps)) {
    } else if (flag == "--skew" && absl::SimpleAtof(v, &a.skew)) {
    } else {
      return absl::InvalidArgumentError("bad flag or value: " + flag + " " + v);
    }
  }
  return a;
}

double Seconds(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

BackendOptions PathOptions(const std::string& path) {
  BackendOptions o;  // the defaults are the new paths
  if (path == "reference") {
    o.cuda_moe = "per-expert";
    o.cuda_attention = "simple";
    o.cuda_sampling = "bisect";
    o.cuda_graphs = false;
  }
  return o;
}

absl::Status BenchPath(const std::string& name, const std::string& path, const Args& args, const DeviceFloor& floor,
                       BenchRows& rows) {
  SyntheticOptions so;
  so.materialize = false;
  so.router_skew = args.skew;
  MOED_ASSIGN_OR_RETURN(std::shared_ptr<const Model> model, CreateSyntheticModel(name, so));
  const ModelSpec& s = model->spec;
  const auto t0 = std::chrono::steady_clock::now();
  MOED_ASSIGN_OR_RETURN(std::unique_ptr<Backend> b, CreateCudaBackend(model, PathOptions(path)));
  std::printf("\n## %s, %s path: weights generated and resident in %.1f s\n", name.c_str(), path.c_str(),
              Seconds(t0, std::chrono::steady_clock::now()));
  const int block = 16;
  const int max_batch = *std::max_element(args.batches.begin(), args.batches.end());
  const int per_seq_blocks = (args.context + args.steps + 8 + block - 1) / block;  // a decoding sequence
  const int prefill_blocks = (args.prefill + block - 1) / block;
  MOED_RETURN_IF_ERROR(b->InitKvCache({std::max(max_batch * per_seq_blocks, prefill_blocks), block}));

  const int64_t H = s.hidden_size, F = s.moe_intermediate_size;
  const double expert_bytes = 3.0 * H * F * 2;
  const double dense_bytes_per_layer =
      (static_cast<double>(s.attention.q_dim() + 2 * s.attention.kv_dim()) * H + static_cast<double>(H) * s.attention.q_dim() +
       static_cast<double>(s.num_experts) * H) * 2;
  const double head_bytes = static_cast<double>(s.vocab_size) * H * 2;

  // Prefill of `args.prefill` tokens in one step (one sequence).
  {
    StepBatch batch;
    batch.token_ids.resize(args.prefill);
    for (int i = 0; i < args.prefill; ++i) batch.token_ids[i] = (i * 7919) % s.vocab_size;
    SequenceStep q;
    q.num_tokens = args.prefill;
    q.block_table.resize(prefill_blocks);
    std::iota(q.block_table.begin(), q.block_table.end(), 0);
    q.sample = true;
    q.sampling.temperature = 0.0f;
    batch.seqs.push_back(q);
    StepOutput out;
    MOED_RETURN_IF_ERROR(b->Step(batch, &out));  // warm-up
    const auto a = std::chrono::steady_clock::now();
    const int reps = 3;
    for (int i = 0; i < reps; ++i) MOED_RETURN_IF_ERROR(b->Step(batch, &out));
    const double t = Seconds(a, std::chrono::steady_clock::now()) / reps;
    const double flops = 2.0 * args.prefill *
                         (s.num_layers * (dense_bytes_per_layer / 2 + s.top_k * expert_bytes / 2)) +
                         2.0 * s.num_layers * s.attention.num_heads * s.attention.head_dim * 2.0 * args.prefill * args.prefill / 2;
    const double fl = flops / floor.bf16_flops_per_s;
    std::printf("%-9s prefill %5d tokens: %8.2f ms   floor %7.2f ms (%5.1f%%)\n", path.c_str(), args.prefill, t * 1e3, fl * 1e3,
                100.0 * fl / t);
    rows.push_back({{"bench", "backend_prefill"}, {"model", name}, {"path", path}, {"tokens", args.prefill}, {"time_ms", t * 1e3},
                    {"floor_ms", fl * 1e3}, {"fraction", fl / t}, {"floor_kind", "flop"}});
  }

  // Decode: `batch` sequences each holding `context` cached tokens (prefilled once), then `steps` decode steps.
  for (int bs : args.batches) {
    std::vector<SequenceStep> seqs(bs);
    for (int i = 0; i < bs; ++i) {
      seqs[i].seq_id = i;
      seqs[i].block_table.resize(per_seq_blocks);
      std::iota(seqs[i].block_table.begin(), seqs[i].block_table.end(), i * per_seq_blocks);
    }
    for (int i = 0; i < bs; ++i) {  // prefill each sequence's context
      StepBatch p;
      p.token_ids.resize(args.context);
      for (int j = 0; j < args.context; ++j) p.token_ids[j] = (i * 131 + j * 17) % s.vocab_size;
      SequenceStep q = seqs[i];
      q.num_tokens = args.context;
      p.seqs.push_back(q);
      StepOutput out;
      MOED_RETURN_IF_ERROR(b->Step(p, &out));
    }
    double total = 0.0, floor_s = 0.0;
    // Two warm-up steps: with graphs the first step of a batch size runs eagerly and the second is captured.
    constexpr int kWarmup = 2;
    for (int step = 0; step < args.steps + kWarmup; ++step) {
      StepBatch d;
      for (int i = 0; i < bs; ++i) {
        SequenceStep q = seqs[i];
        q.token_offset = i;
        q.num_tokens = 1;
        q.start_pos = args.context + step;
        q.sample = true;
        q.sampling.temperature = 0.0f;
        d.token_ids.push_back((i + step * 7) % s.vocab_size);
        d.seqs.push_back(q);
      }
      StepOutput out;
      const auto a = std::chrono::steady_clock::now();
      MOED_RETURN_IF_ERROR(b->Step(d, &out));
      const double t = Seconds(a, std::chrono::steady_clock::now());
      if (step < kWarmup) continue;
      int64_t touched = 0;
      for (int64_t r : out.routed) touched += r > 0;
      const double kv_bytes = 2.0 * s.num_layers * bs * (args.context + step) * s.attention.kv_dim() * 2;
      const double bytes = s.num_layers * dense_bytes_per_layer + touched * expert_bytes + head_bytes + kv_bytes;
      total += t;
      floor_s += bytes / floor.bandwidth_bytes_per_s;
    }
    const double per = total / args.steps, fl = floor_s / args.steps;
    std::printf("%-9s decode batch %3d (context %d): %8.3f ms/step  %8.1f tok/s   floor %7.3f ms (%5.1f%%)\n", path.c_str(), bs,
                args.context, per * 1e3, bs / per, fl * 1e3, 100.0 * fl / per);
    rows.push_back({{"bench", "backend_decode"}, {"model", name}, {"path", path}, {"batch", bs}, {"context", args.context},
                    {"time_ms", per * 1e3}, {"tok_per_s", bs / per}, {"floor_ms", fl * 1e3}, {"fraction", fl / per},
                    {"floor_kind", "hbm"}});
  }
  return absl::OkStatus();
}

// One layer's prefill attention timed with events, times the layer count: the tiles (when the shape takes them) and
// the simple kernel over the same cache, queries and block table.
absl::Status BenchPrefillAttention(const std::string& name, const Args& args, const DeviceFloor& floor,
                                   BenchRows& rows) {
  SyntheticOptions so;
  so.materialize = false;
  MOED_ASSIGN_OR_RETURN(std::shared_ptr<const Model> model, CreateSyntheticModel(name, so));
  const AttentionSpec& at = model->spec.attention;
  const int T = args.prefill, block = 16, layers = model->spec.num_layers;
  const int64_t kv_elems = static_cast<int64_t>((T + block - 1) / block) * block * at.kv_dim();
  cuda::DeviceBuffer k, v, q, out, meta;
  MOED_RETURN_IF_ERROR(k.Reserve(kv_elems * sizeof(__nv_bfloat16), "bench K cache"));
  MOED_RETURN_IF_ERROR(v.Reserve(kv_elems * sizeof(__nv_bfloat16), "bench V cache"));
  MOED_RETURN_IF_ERROR(q.Reserve(static_cast<size_t>(T) * at.q_dim() * sizeof(float), "bench queries"));
  MOED_RETURN_IF_ERROR(out.Reserve(static_cast<size_t>(T) * at.q_dim() * sizeof(__nv_bfloat16), "bench output"));
  MOED_CUDA_RETURN_IF_ERROR(cuda::LaunchSyntheticFill(k.as<__nv_bfloat16>(), kv_elems, 1, 1.0f, nullptr));
  MOED_CUDA_RETURN_IF_ERROR(cuda::LaunchSyntheticFill(v.as<__nv_bfloat16>(), kv_elems, 2, 1.0f, nullptr));
  MOED_CUDA_RETURN_IF_ERROR(cudaMemset(q.get(), 0x3c, static_cast<size_t>(T) * at.q_dim() * sizeof(float)));  // 0.0115
  std::vector<int32_t> positions(T), offsets(T, 0), seq(T, 0), table((T + block - 1) / block);
  std::iota(positions.begin(), positions.end(), 0);
  std::iota(table.begin(), table.end(), 0);
  std::vector<cuda::PrefillTile> tiles;
  std::vector<int32_t> decode_rows;
  cuda::PlanFlashPrefill(seq, positions, offsets, at.sliding_window, &tiles, &decode_rows);
  // meta: positions | offsets | table | tiles, 16-byte aligned pieces.
  const size_t o_off = T * 4, o_tab = o_off + T * 4, o_tiles = (o_tab + table.size() * 4 + 15) / 16 * 16;
  MOED_RETURN_IF_ERROR(meta.Reserve(o_tiles + tiles.size() * sizeof(cuda::PrefillTile) + 16, "bench step inputs"));
  char* m = meta.as<char>();
  MOED_CUDA_RETURN_IF_ERROR(cudaMemcpy(m, positions.data(), T * 4, cudaMemcpyHostToDevice));
  MOED_CUDA_RETURN_IF_ERROR(cudaMemcpy(m + o_off, offsets.data(), T * 4, cudaMemcpyHostToDevice));
  MOED_CUDA_RETURN_IF_ERROR(cudaMemcpy(m + o_tab, table.data(), table.size() * 4, cudaMemcpyHostToDevice));
  MOED_CUDA_RETURN_IF_ERROR(
      cudaMemcpy(m + o_tiles, tiles.data(), tiles.size() * sizeof(cuda::PrefillTile), cudaMemcpyHostToDevice));
  cuda::PagedAttentionArgs a;
  a.q = q.as<float>();
  a.k_cache = k.as<__nv_bfloat16>();
  a.v_cache = v.as<__nv_bfloat16>();
  a.positions = reinterpret_cast<const int32_t*>(m);
  a.table_offsets = reinterpret_cast<const int32_t*>(m + o_off);
  a.block_tables = reinterpret_cast<const int32_t*>(m + o_tab);
  a.tokens = T;
  a.num_heads = at.num_heads;
  a.num_kv_heads = at.num_kv_heads;
  a.head_dim = at.head_dim;
  a.block_size = block;
  a.sliding_window = at.sliding_window;
  a.scale = 1.0f / std::sqrt(static_cast<float>(at.head_dim));
  a.out = out.as<__nv_bfloat16>();
  const auto* d_tiles = reinterpret_cast<const cuda::PrefillTile*>(m + o_tiles);
  // Causal (query, key) pairs, each 2·head_dim FLOPs for Q·Kᵀ and as many for P·V, every head and layer.
  double pairs = 0.0;
  for (int t = 0; t < T; ++t) pairs += at.sliding_window > 0 ? std::min(t + 1, at.sliding_window) : t + 1;
  const double floor_ms = 4.0 * pairs * at.head_dim * at.num_heads * layers / floor.bf16_flops_per_s * 1e3;
  const bool tiled = cuda::FlashPrefillSupported(at.num_heads, at.num_kv_heads, at.head_dim);
  for (const std::string& path : args.paths) {
    if (path == "new" && !tiled) {
      std::printf("%-9s prefill attention: shape not taken by the tiles (head_dim %d)\n", path.c_str(), at.head_dim);
      continue;
    }
    auto launch = [&]() {
      return path == "new" ? cuda::LaunchFlashPrefill(a, d_tiles, static_cast<int>(tiles.size()), nullptr)
                           : cuda::LaunchPagedAttention(a, nullptr);
    };
    MOED_CUDA_RETURN_IF_ERROR(launch());  // warm-up
    cudaEvent_t e0, e1;
    MOED_CUDA_RETURN_IF_ERROR(cudaEventCreate(&e0));
    MOED_CUDA_RETURN_IF_ERROR(cudaEventCreate(&e1));
    const int reps = path == "new" ? 10 : 3;
    MOED_CUDA_RETURN_IF_ERROR(cudaEventRecord(e0, nullptr));
    for (int i = 0; i < reps; ++i) MOED_CUDA_RETURN_IF_ERROR(launch());
    MOED_CUDA_RETURN_IF_ERROR(cudaEventRecord(e1, nullptr));
    MOED_CUDA_RETURN_IF_ERROR(cudaEventSynchronize(e1));
    float ms = 0.0f;
    MOED_CUDA_RETURN_IF_ERROR(cudaEventElapsedTime(&ms, e0, e1));
    (void)cudaEventDestroy(e0);
    (void)cudaEventDestroy(e1);
    const double t_ms = static_cast<double>(ms) / reps * layers;
    std::printf("%-9s prefill attention %5d tokens, %d layers: %8.2f ms   floor %7.2f ms (%5.1f%%)\n", path.c_str(), T,
                layers, t_ms, floor_ms, 100.0 * floor_ms / t_ms);
    rows.push_back({{"bench", "prefill_attention"}, {"model", name}, {"path", path}, {"tokens", T}, {"time_ms", t_ms},
                    {"floor_ms", floor_ms}, {"fraction", floor_ms / t_ms}, {"floor_kind", "flop"}});
  }
  return absl::OkStatus();
}

absl::Status BenchModel(const std::string& name, const Args& args, const DeviceFloor& floor, BenchRows& rows) {
  MOED_RETURN_IF_ERROR(BenchPrefillAttention(name, args, floor, rows));
  for (const std::string& path : args.paths) MOED_RETURN_IF_ERROR(BenchPath(name, path, args, floor, rows));
  return absl::OkStatus();
}

int Main(int argc, char** argv) {
  auto args = ParseArgs(argc, argv);
  if (!args.ok()) {
    std::fprintf(stderr, "%s\n", std::string(args.status().message()).c_str());
    return 2;
  }
  return RunOnEachModel(args->models, args->json, [&](const std::string& m, const DeviceFloor& floor, BenchRows& rows) {
    return BenchModel(m, *args, floor, rows);
  });
}

}  // namespace
}  // namespace moed::bench

int main(int argc, char** argv) { return moed::bench::Main(argc, argv); }
