#include "probe/event_latency.h"

#include "common/sync.cuh"
#include "probe/probe_common.cuh"

namespace megalith::kernels {

namespace {

constexpr int kThreads = 256;
constexpr int kLoadsInFlight = 4;  // 16-byte loads per thread, as a task's load_row

__device__ __forceinline__ void red_add_f32(float* p, float v) {
  asm volatile("red.relaxed.gpu.global.add.f32 [%0], %1;" ::"l"(p), "f"(v) : "memory");
}
// One 16-byte reduction on sm_90 (vector `red` is new there), four before it.
__device__ __forceinline__ void red_add_f32x4(float* p, float v) {
#if __CUDA_ARCH__ >= 900
  asm volatile("red.relaxed.gpu.global.add.v4.f32 [%0], {%1, %1, %1, %1};" ::"l"(p), "f"(v)
               : "memory");
#else
  for (int i = 0; i < 4; ++i) red_add_f32(p + i, v);
#endif
}

// The whole vector after round r of an accumulating scheme: the two vectors alternate, and
// every CTA added 1 to each element in each of its vector's rounds (exact in a float while
// below 2^24, which launch_event_latency checks).
__device__ __forceinline__ float accumulated_value(int round) {
  return float((round / 2 + 1) * int(gridDim.x));
}

// Round r's partial of a split-K product: 1 added to each of the vector's `total` elements.
__device__ void accumulate_round(const EventLatencyArgs& args, int r, int total) {
  if (args.accumulate == kAccumulateU64) {
    uint64_t* vector = args.tagged_vectors + size_t(r % 2) * size_t(total);
    for (int i = int(threadIdx.x); i < total; i += kThreads) red_relaxed_gpu_add(vector + i, 1);
    return;
  }
  float* vector = args.vectors + size_t(r % 2) * size_t(total);
  if (args.accumulate == kAccumulateF32) {
    for (int i = int(threadIdx.x); i < total; i += kThreads) red_add_f32(vector + i, 1.0f);
  } else {
    for (int i = 4 * int(threadIdx.x); i < total; i += 4 * kThreads) red_add_f32x4(vector + i, 1.0f);
  }
}

// Loads an accumulating scheme's 64-bit words into the row as floats, as a reader of a
// fixed-point vector would.
__device__ void load_u64_row(const uint64_t* vector, int total, float* row) {
  load_vectors<kThreads, kLoadsInFlight>(reinterpret_cast<const ulonglong2*>(vector), total / 2,
                                         [&](int k, const ulonglong2& v) {
                                           row[2 * k] = float(v.x);
                                           row[2 * k + 1] = float(v.y);
                                         });
}

// Round r with the signal in the data (NCCL's LL protocol): each float goes out with the round
// in the upper half of one 8-byte relaxed store (single-copy atomic), and the readers load the
// whole vector, loading again each element whose round is not yet theirs. No counter, no
// fence, no second round trip for the data. Two vectors in turn: a CTA writes round r + 1's
// only after it read every CTA's round r, which each wrote only after reading round r - 1.
// True when a wait gave up.
__device__ bool tagged_round(const EventLatencyArgs& args, int r, float* row) {
  const int ctas = int(gridDim.x), per = args.floats_per_cta, total = ctas * per;
  uint64_t* vector = args.tagged_vectors + size_t(r % 2) * size_t(total);
  const uint32_t tag = uint32_t(r + 1);
  for (int i = int(threadIdx.x); i < per; i += kThreads) {
    const float value = round_value(r, int(blockIdx.x), i);
    st_relaxed_gpu(vector + blockIdx.x * per + i, uint64_t(tag) << 32 | __float_as_uint(value));
  }
  ProbeSpin spin;
  bool expired = false;
  for (int base = 0; base < total && !expired; base += kLoadsInFlight * kThreads) {
    uint64_t v[kLoadsInFlight];
#pragma unroll
    for (int j = 0; j < kLoadsInFlight; ++j) {
      const int k = base + j * kThreads + int(threadIdx.x);
      v[j] = k < total ? ld_relaxed_gpu(vector + k) : 0;
    }
#pragma unroll
    for (int j = 0; j < kLoadsInFlight; ++j) {
      const int k = base + j * kThreads + int(threadIdx.x);
      if (k >= total) continue;
      while (uint32_t(v[j] >> 32) != tag && !expired) {
        expired = spin.expired();
        v[j] = ld_relaxed_gpu(vector + k);
      }
      row[k] = __uint_as_float(uint32_t(v[j]));
    }
  }
  return expired;
}

__global__ void __launch_bounds__(kThreads, 1) event_latency_kernel(const EventLatencyArgs args) {
  extern __shared__ __align__(16) float row[];
  const int ctas = int(gridDim.x), per = args.floats_per_cta, total = ctas * per;
  uint32_t wrong = 0;
  for (int r = 0; r < args.rounds; ++r) {
    if (args.tagged != 0) {
      if (__syncthreads_or(tagged_round(args, r, row) ? 1 : 0) != 0) {
        if (threadIdx.x == 0) atomicAdd(args.errors, 1u);
        return;
      }
      // The thread's own first element: no barrier orders another thread's next round after it.
      const int k = int(threadIdx.x);
      if (k < total) wrong += row[k] != round_value(r, k / per, k % per) ? 1u : 0u;
      continue;
    }
    // Two vectors: a CTA writes round r + 1's only after every CTA signalled round r, that
    // is, finished loading round r - 1's from the same vector.
    float* vector = args.vectors + size_t(r % 2) * size_t(total);
    if (args.accumulate != kAccumulateNone) {
      accumulate_round(args, r, total);
    } else {
      for (int i = int(threadIdx.x); i < per; i += kThreads) {
        vector[blockIdx.x * per + i] = round_value(r, int(blockIdx.x), i);
      }
    }
    __syncthreads();  // the CTA's writes before its release, as a task's tail
    __shared__ uint32_t stuck;
    const bool alternative = args.counters > 1 || args.relaxed_poll != 0 || args.flags != 0;
    if (threadIdx.x == 0 && !alternative) {
      stuck = signal_and_wait(args.counter, uint64_t(ctas) * uint64_t(r + 1)) ? 1u : 0u;
    } else if (threadIdx.x < 32 && alternative) {
      // The releases spread over `counters` lines, lane i polling line i, the warp adding up
      // what its lanes saw; or a flag a CTA, lane i polling CTAs i, i + 32, ...; relaxed polls
      // end in one acquire fence.
      const int lane = int(threadIdx.x);
      const uint64_t round = uint64_t(r + 1);
      if (lane == 0 && args.flags != 0) {
        st_release_gpu(args.counter + blockIdx.x, round);
      } else if (lane == 0) {
        red_release_gpu_add(args.counter + (blockIdx.x % args.counters) * EVENT_COUNTER_STRIDE, 1);
      }
      const uint64_t target = uint64_t(ctas) * round;
      const uint64_t* mine = args.counter + lane * EVENT_COUNTER_STRIDE;
      const bool polls = lane < args.counters;
      const bool relaxed = args.relaxed_poll != 0 || args.flags != 0;
      ProbeSpin spin;
      bool expired = false;  // the same on every lane
      for (;;) {
        bool done;
        if (args.flags != 0) {
          bool mine_done = true;
          for (int c = lane; c < ctas; c += 32) {
            mine_done &= ld_relaxed_gpu(args.counter + c) >= round;
          }
          done = __all_sync(0xffffffffu, mine_done);
        } else {
          uint64_t seen = !polls ? 0 : relaxed ? ld_relaxed_gpu(mine) : ld_acquire_gpu(mine);
          if (args.counters > 1) {
#pragma unroll
            for (int o = 16; o > 0; o /= 2) seen += __shfl_xor_sync(0xffffffffu, seen, o);
          } else {
            seen = __shfl_sync(0xffffffffu, seen, 0);
          }
          done = seen >= target;
        }
        if (done) break;
        expired = __any_sync(0xffffffffu, spin.expired());
        if (expired) break;
      }
      if (relaxed) fence_acq_rel_gpu();
      if (lane == 0) stuck = expired ? 1u : 0u;
    }
    __syncthreads();
    if (stuck != 0) {
      if (threadIdx.x == 0) atomicAdd(args.errors, 1u);
      return;
    }
    if (args.accumulate == kAccumulateU64) {
      load_u64_row(args.tagged_vectors + size_t(r % 2) * size_t(total), total, row);
    } else {
      float4* row4 = reinterpret_cast<float4*>(row);
      load_vectors<kThreads, kLoadsInFlight>(reinterpret_cast<const float4*>(vector), total / 4,
                                             [&](int k, const float4& v) { row4[k] = v; });
    }
    __syncthreads();  // the row is the task's input from here on
    if (per > 0) {
      const int k = (r * 131 + int(blockIdx.x) * 7 + int(threadIdx.x)) % total;
      const float expected = args.accumulate != kAccumulateNone ? accumulated_value(r)
                                                                : round_value(r, k / per, k % per);
      wrong += row[k] != expected ? 1u : 0u;
    }
  }
  if (wrong != 0) atomicAdd(args.errors, wrong);
}

}  // namespace

cudaError_t launch_event_latency(const EventLatencyArgs& args, int ctas, cudaStream_t stream) {
  if (args.floats_per_cta < 0 || args.floats_per_cta % 4 != 0 || args.floats_per_cta > 96 ||
      args.rounds < 1 || ctas < 1 || args.counters < 1 || args.counters > EVENT_MAX_COUNTERS ||
      (args.flags != 0 && ctas > EVENT_MAX_COUNTERS * EVENT_COUNTER_STRIDE) ||
      (args.tagged != 0 && (args.floats_per_cta == 0 || args.tagged_vectors == nullptr)) ||
      args.accumulate < kAccumulateNone || args.accumulate > kAccumulateU64 ||
      (args.accumulate != kAccumulateNone &&
       (args.floats_per_cta == 0 || args.tagged != 0 || args.counters != 1 ||
        args.relaxed_poll != 0 || args.flags != 0 || args.tagged_vectors == nullptr ||
        (uint64_t(args.rounds) / 2 + 1) * uint64_t(ctas) >= (uint64_t(1) << 24)))) {
    return cudaErrorInvalidValue;
  }
  const size_t smem = event_latency_smem(ctas, args.floats_per_cta);
  cudaError_t e = cudaFuncSetAttribute(event_latency_kernel,
                                       cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem));
  if (e != cudaSuccess) return e;
  event_latency_kernel<<<ctas, kThreads, smem, stream>>>(args);
  return cudaGetLastError();
}

}  // namespace megalith::kernels
