#include "probe/fence_wait.h"

#include "common/sync.cuh"

namespace megalith::kernels {

namespace {

constexpr int kThreads = 64;  // warp 0 times, warp 1 issues the traffic

__global__ void __launch_bounds__(kThreads, 1) fence_wait_kernel(const FenceWaitArgs args) {
#if __CUDA_ARCH__ >= 900
  constexpr uint32_t kCopyPiece = 32768;      // a ring stage's copy
  constexpr uint32_t kPrefetchPiece = 65536;  // the L2 request's pieces (weight_ring.cuh)
  constexpr uint64_t kSettleNs = 20000;       // after prefetches: time for them to land
  constexpr uint8_t kFill = 0x5a;             // every cold byte (the bench fills them)
  extern __shared__ __align__(128) uint8_t stage[];
  __shared__ uint64_t full;
  __shared__ volatile int32_t issued;
  if (threadIdx.x == 0) {
    mbarrier_init(&full, 1);
    fence_barrier_init();
    issued = -1;
  }
  __syncthreads();
  const uint64_t policy = l2_evict_first_policy();
  // Each round's traffic starts 4 KB past the last one's end, CTAs interleaved: the cold
  // buffer is far larger than L2, so a round never finds its bytes there.
  const uint64_t stride = (uint64_t(args.bytes) + 4096 + 127) / 128 * 128;
  const uint64_t span = args.cold_bytes / stride;
  uint64_t fence_cycles = 0, load_cycles = 0;
  uint32_t wrong = 0;
  if (threadIdx.x == 0) (void)ld_relaxed_gpu(args.hot);  // the line is in L2 from here on
  for (int r = 0; r < FENCE_WAIT_ROUNDS; ++r) {
    const uint8_t* src = args.cold + (uint64_t(r) * gridDim.x + blockIdx.x) % span * stride;
    if (threadIdx.x == 32) {
      if (args.traffic == FenceTraffic::kCopies && args.bytes > 0) {
        mbarrier_arrive_expect_tx(&full, args.bytes);
        for (uint32_t o = 0; o < args.bytes; o += kCopyPiece) {
          bulk_copy_g2s(stage + o, src + o, min(kCopyPiece, args.bytes - o), &full, policy);
        }
      } else if (args.traffic == FenceTraffic::kL2Prefetches) {
        for (uint32_t o = 0; o < args.bytes; o += kPrefetchPiece) {
          bulk_prefetch_l2(src + o, min(kPrefetchPiece, args.bytes - o));
        }
      }
      issued = r;
    }
    if (threadIdx.x == 0) {
      while (issued != r) {
      }
      const uint64_t t0 = clock64();
      st_relaxed_gpu(args.hot + 16 * (blockIdx.x + 1), uint64_t(r));
      fence_acq_rel_gpu();
      const uint64_t t1 = clock64();
      const uint64_t v = ld_relaxed_gpu(args.hot);
      // The load's value feeds the timer read, so the read waits for it.
      const uint64_t t2 = clock64() + (v == 1 ? 1 : 0);
      fence_cycles += t1 - t0;
      load_cycles += t2 - t1;
    }
    if (threadIdx.x == 32) {
      if (args.traffic == FenceTraffic::kCopies && args.bytes > 0) {
        while (!mbarrier_try_wait(&full, uint32_t(r) & 1)) {
        }
        wrong += stage[args.bytes - 1] != kFill ? 1u : 0u;
      } else if (args.traffic == FenceTraffic::kL2Prefetches) {
        const uint64_t until = global_timer_ns() + kSettleNs;
        while (global_timer_ns() < until) {
        }
      }
    }
    __syncthreads();  // the next round's copies overwrite the stage
  }
  if (threadIdx.x == 0) {
    args.cycles[2 * blockIdx.x] = fence_cycles;
    args.cycles[2 * blockIdx.x + 1] = load_cycles;
  }
  if (wrong != 0) atomicAdd(args.errors, wrong);
#endif
}

}  // namespace

cudaError_t launch_fence_wait(const FenceWaitArgs& args, int ctas, cudaStream_t stream) {
  const bool copies = args.traffic == FenceTraffic::kCopies;
  if (ctas < 1 || args.bytes % 16 != 0 || (copies && args.bytes > FENCE_WAIT_MAX_COPY_BYTES) ||
      args.cold_bytes < (uint64_t(256) << 20) ||
      args.cold_bytes < 64 * (uint64_t(args.bytes) + 4096)) {
    return cudaErrorInvalidValue;
  }
  int device = 0, major = 0;
  cudaError_t e = cudaGetDevice(&device);
  if (e == cudaSuccess) e = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
  if (e != cudaSuccess) return e;
  if (major < 9) return cudaErrorNotSupported;
  const int smem = copies ? int(args.bytes) : 0;
  e = cudaFuncSetAttribute(fence_wait_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (e != cudaSuccess) return e;
  fence_wait_kernel<<<ctas, kThreads, smem, stream>>>(args);
  return cudaGetLastError();
}

}  // namespace megalith::kernels
