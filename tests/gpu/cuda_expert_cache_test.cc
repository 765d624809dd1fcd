// The expert cache's GPU tier against its CPU twin: the same Zipf-skewed routing trace through the shared wave
// planner over the CUDA slot pool and over the CPU memcpy pool gives the same hits, misses, evictions and
// prefetches per step, and every slot the compute stream reads (after WaitLoaded, no host sync) holds its expert.
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "engine/backend/cuda/cuda_expert_transfer.h"
#include "engine/cache/expert_cache.h"
#include "engine/cache/memcpy_transfer.h"
#include "engine/cache/wave_planner.h"
#include "engine/cache/zipf_routing.h"
#include "tests/gpu/gpu_test_util.h"

namespace moed {
namespace {

constexpr int kLayers = 4, kExperts = 16, kTopK = 2, kFloats = 1024;  // one expert = 4 KiB

// A Zipf(1.1)-skewed trace: (steps * layers) entries of rows*top_k expert ids, layer-major within a step.
std::vector<std::vector<int32_t>> ZipfTrace(cache::ZipfRouting& z, int steps, int rows) {
  std::vector<std::vector<int32_t>> trace;
  for (int s = 0; s < steps; ++s) {
    for (int l = 0; l < kLayers; ++l) {
      std::vector<int32_t> ids(static_cast<size_t>(rows) * kTopK);
      z.Draw(l, rows, ids.data());
      trace.push_back(std::move(ids));
    }
  }
  return trace;
}

TEST(CudaExpertCacheTest, SameHitsAndMissesAsTheCpuTierAndSlotsHoldTheirExperts) {
  MOED_REQUIRE_GPU();
  std::vector<std::vector<float>> data(kLayers * kExperts);
  std::vector<std::vector<cache::HostPart>> cpu_parts(kLayers * kExperts);
  std::vector<std::vector<cuda::HostBytes>> gpu_parts(kLayers * kExperts);
  for (int f = 0; f < kLayers * kExperts; ++f) {
    data[f].assign(kFloats, static_cast<float>(f));
    data[f][kFloats - 1] = -static_cast<float>(f);
    cpu_parts[f] = {{data[f].data(), kFloats}};
    gpu_parts[f] = {{data[f].data(), static_cast<int64_t>(kFloats * sizeof(float))}};
  }
  constexpr int kSlots = 9;
  cudaStream_t compute;
  MOED_CUDA_ASSERT(cudaStreamCreate(&compute));
  auto cpu_pool = cache::MemcpyTransfer::Create(kExperts, cpu_parts, kSlots);
  auto gpu_pool = cuda::CudaExpertTransfer::Create(kExperts, gpu_parts, kSlots, compute);
  ASSERT_TRUE(cpu_pool.ok() && gpu_pool.ok()) << cpu_pool.status() << gpu_pool.status();
  const cache::ExpertCacheConfig config{kLayers, kExperts, kSlots, "lru", {}};
  auto cpu = std::move(cache::ExpertCache::Create(config, cpu_pool->get())).value();
  auto gpu = std::move(cache::ExpertCache::Create(config, gpu_pool->get())).value();

  cache::ZipfRouting zipf(kLayers, kExperts, kTopK, 1.1, 15);
  for (int rows : {1, 16}) {  // rows 16: layers need more experts than slots, so waves
    const auto trace = ZipfTrace(zipf, 6, rows);
    for (size_t step = 0; step * kLayers < trace.size(); ++step) {
      cpu->BeginStep();
      gpu->BeginStep();
      for (int l = 0; l < kLayers; ++l) {
        const std::vector<int32_t>& ids = trace[step * kLayers + l];
        std::vector<int64_t> used(kExperts, 0);
        for (int32_t e : ids) ++used[e];
        cache::WavePlanner cp(cpu.get(), l, used);
        cache::WavePlanner gp(gpu.get(), l, used, /*wait_loads=*/false);
        while (true) {
          auto cw = cp.Next();
          auto gw = gp.Next();
          ASSERT_TRUE(cw.ok() && gw.ok()) << cw.status() << gw.status();
          ASSERT_EQ(*cw == nullptr, *gw == nullptr);
          if (*cw == nullptr) break;
          ASSERT_EQ((*cw)->experts.size(), (*gw)->experts.size());
          for (size_t i = 0; i < (*gw)->experts.size(); ++i) {
            const cache::PlannedExpert& p = (*gw)->experts[i];
            EXPECT_EQ(p.expert, (*cw)->experts[i].expert);
            EXPECT_EQ(p.hit, (*cw)->experts[i].hit);
            // What a kernel on the compute stream would read: ordered after the copy by the slot's event only.
            ASSERT_TRUE(gpu->WaitLoaded(p.slot).ok());
            std::vector<float> got(kFloats);
            MOED_CUDA_ASSERT(cudaMemcpyAsync(got.data(), (*gpu_pool)->slot_ptr(p.slot), kFloats * sizeof(float),
                                             cudaMemcpyDeviceToHost, compute));
            MOED_CUDA_ASSERT(cudaStreamSynchronize(compute));
            ASSERT_EQ(std::memcmp(got.data(), data[l * kExperts + p.expert].data(), kFloats * sizeof(float)), 0)
                << "layer " << l << " expert " << p.expert << " slot " << p.slot;
          }
        }
        if (l + 1 < kLayers) {  // prefetch the next layer's true experts (a perfect predictor)
          const std::vector<int32_t>& next = trace[step * kLayers + l + 1];
          const auto order = cache::PrefetchOrder(next, kExperts);
          ASSERT_EQ(*cache::PrefetchExperts(cpu.get(), l + 1, order), *cache::PrefetchExperts(gpu.get(), l + 1, order));
        }
      }
      MOED_CUDA_ASSERT(cudaStreamSynchronize(compute));
      MOED_CUDA_ASSERT(cudaStreamSynchronize((*gpu_pool)->copy_stream()));
      const cache::ExpertCacheStats c = cpu->TakeStepStats(), g = gpu->TakeStepStats();
      EXPECT_EQ(c.hits, g.hits);
      EXPECT_EQ(c.misses, g.misses);
      EXPECT_EQ(c.evictions, g.evictions);
      EXPECT_EQ(c.prefetch_issued, g.prefetch_issued);
      EXPECT_EQ(c.prefetch_wasted, g.prefetch_wasted);
      EXPECT_EQ(c.bytes_transferred, g.bytes_transferred);
      // Every copy was timed by its events once both streams drained.
      EXPECT_EQ(c.load_durations.size(), g.load_durations.size());
      for (double t : g.load_durations) EXPECT_GT(t, 0.0);
    }
  }
  gpu.reset();
  gpu_pool->reset();
  cudaStreamDestroy(compute);
}

}  // namespace
}  // namespace moed
