#include "probe/fence_wait.h"

#include "common/sync.cuh"
#include "megakernel/layout.h"

namespace megalith::kernels {

namespace {

constexpr int kThreads = 64;  // warp 0 times, warp 1 issues the traffic
// Every launch takes more than half an SM's shared memory, so that each CTA has an SM alone.
constexpr uint32_t kLeastSmem = 120 << 10;

// A round's L2 prefetches are given this long to land.
__device__ void settle(uint64_t ns) {
  const uint64_t until = global_timer_ns() + ns;
  while (global_timer_ns() < until) {
  }
}

__global__ void __launch_bounds__(kThreads, 1) fence_wait_kernel(const FenceWaitArgs args) {
#if __CUDA_ARCH__ >= 900
  extern __shared__ __align__(128) uint8_t stage[];
  __shared__ uint64_t full;
  __shared__ volatile int32_t issued, timed;
  __shared__ volatile int64_t fence_start;
  __shared__ volatile uint64_t sink;
  const bool copies = fence_wait_copies(args.traffic) && args.bytes > 0;
  // Copies of lines asked of L2 first, untimed, with time to arrive.
  const bool via_l2 = args.traffic == FenceTraffic::kCopiesFromL2 && args.bytes > 0;
  if (threadIdx.x == 0) {
    mbarrier_init(&full, 1);
    fence_barrier_init();
    issued = timed = -1;
  }
  __syncthreads();
  const uint64_t policy = l2_evict_first_policy();
  const uint64_t stride = fence_wait_stride(args.bytes);
  // The hot line's address in a register before any timing (not a constant-bank load on the
  // timed path).
  uint64_t* hot = args.hot;
  asm volatile("" : "+l"(hot));
  int64_t fence_cycles = 0, load_cycles = 0, landed_cycles = 0;
  uint32_t wrong = 0;
  for (int r = 0; r < FENCE_WAIT_ROUNDS; ++r) {
    // CTAs interleaved round after round, from the launch's offset on.
    const uint64_t at = (args.offset + (uint64_t(r) * gridDim.x + blockIdx.x) * stride) %
                        (args.cold_bytes - stride) / 128 * 128;
    const uint8_t* src = args.cold + at;
    if (threadIdx.x == 32) {
      if (via_l2) {
        bulk_prefetch_l2_range(uintptr_t(src), uintptr_t(src) + args.bytes);
        settle(args.settle_ns);
      }
      if (copies) {
        // The byte the check reads, cleared first, so that each round's copies must land.
        stage[args.bytes - 1] = 0;
        asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
        mbarrier_arrive_expect_tx(&full, args.bytes);
        // A ring stage's copy at a time.
        for (uint32_t o = 0; o < args.bytes; o += STAGE_BYTES) {
          bulk_copy_g2s(stage + o, src + o, min(uint32_t(STAGE_BYTES), args.bytes - o), &full,
                        policy);
        }
      } else if (args.traffic == FenceTraffic::kL2Prefetches) {
        bulk_prefetch_l2_range(uintptr_t(src), uintptr_t(src) + args.bytes);
      }
      issued = r;
    }
    if (threadIdx.x == 0) {
      // Untimed: the line back in L2 each round, whatever the last round's traffic evicted
      // (512 KB of prefetches from every SM are more than L2 holds).
      sink = ld_relaxed_gpu(hot);
      while (issued != r) {
      }
      const int64_t t0 = clock64();
      st_relaxed_gpu(hot + 16 * (blockIdx.x + 1), uint64_t(r));
      fence_acq_rel_gpu();
      const int64_t t1 = clock64();
      // The store of the loaded value waits for it, and the timer read comes after the store.
      sink = ld_relaxed_gpu(hot);
      asm volatile("" ::: "memory");
      const int64_t t2 = clock64();
      fence_cycles += t1 - t0;
      load_cycles += t2 - t1;
      fence_start = t0;
      __threadfence_block();
      timed = r;
    }
    if (threadIdx.x == 32) {
      if (copies) {
        while (!mbarrier_try_wait(&full, uint32_t(r) & 1)) {
        }
        const int64_t landed = clock64();
        wrong += stage[args.bytes - 1] != FENCE_WAIT_FILL ? 1u : 0u;
        // Negative when the copies were in before the fence began.
        while (timed != r) {
        }
        landed_cycles += landed - fence_start;
      } else if (args.traffic == FenceTraffic::kL2Prefetches) {
        settle(args.settle_ns);
      }
    }
    __syncthreads();  // the next round's copies overwrite the stage
  }
  if (threadIdx.x == 0) {
    args.cycles[FENCE_WAIT_SUMS * blockIdx.x] = fence_cycles;
    args.cycles[FENCE_WAIT_SUMS * blockIdx.x + 1] = load_cycles;
  }
  if (threadIdx.x == 32) args.cycles[FENCE_WAIT_SUMS * blockIdx.x + 2] = landed_cycles;
  if (wrong != 0) atomicAdd(args.errors, wrong);
#else
  __trap();  // no bulk copies: launch_fence_wait refuses such devices, and this build runs none
#endif
}

}  // namespace

cudaError_t launch_fence_wait(const FenceWaitArgs& args, int ctas, cudaStream_t stream) {
  int device = 0, major = 0, sms = 0;
  cudaError_t e = cudaGetDevice(&device);
  if (e == cudaSuccess) {
    e = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
  }
  if (e == cudaSuccess) e = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  if (e != cudaSuccess) return e;
  const bool copies = fence_wait_copies(args.traffic);
  if (ctas < 1 || ctas > sms || args.cold == nullptr || args.hot == nullptr ||
      args.cycles == nullptr || args.errors == nullptr ||
      reinterpret_cast<uintptr_t>(args.cold) % 128 != 0 || args.bytes % 16 != 0 ||
      (copies && args.bytes > FENCE_WAIT_MAX_COPY_BYTES) ||
      args.cold_bytes < (uint64_t(256) << 20) ||
      args.cold_bytes < FENCE_WAIT_ROUNDS * fence_wait_stride(args.bytes)) {
    return cudaErrorInvalidValue;
  }
  cudaFuncAttributes built{};
  e = cudaFuncGetAttributes(&built, fence_wait_kernel);
  if (e != cudaSuccess) return e;
  if (major < 9 || built.ptxVersion < 90) return cudaErrorNotSupported;
  const int smem = int(copies && args.bytes > kLeastSmem ? args.bytes : kLeastSmem);
  e = cudaFuncSetAttribute(fence_wait_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (e != cudaSuccess) return e;
  fence_wait_kernel<<<ctas, kThreads, smem, stream>>>(args);
  return cudaGetLastError();
}

}  // namespace megalith::kernels
