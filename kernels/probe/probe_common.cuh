// What the hand-off probes share with the megakernel's tasks: the input row's loads as a task's
// load_row issues them, the megakernel's signal and wait on one counter, and a wait that gives
// up instead of hanging.
//
//   vector[cta * per + i] = round_value(r, cta, i);   // what readers check
//   load_vectors<256, 4>(src4, count / 4, [&](int k, const float4& v) { row4[k] = v; });
//   const bool stuck = signal_and_wait(counter, target);
#pragma once

#include <stdint.h>

#include "common/sync.cuh"
#include "megakernel/watchdog.cuh"

namespace megalith::kernels {

// The value CTA `cta`'s float `i` holds in round `round`: an integer below 2^24, so exact in a
// float, and different for the rounds a reader could confuse.
__device__ __forceinline__ float round_value(int round, int cta, int i) {
  return float((round % 512) * 16384 + cta * 97 + i);
}

// Each thread of THREADS puts LOADS 16-byte loads in flight before it hands any of them on, so
// a row costs one or two memory latencies, not one per vector.
// Vectors 0 .. count - 1 of `src` (global memory), each passed to store(k, vector).
template <int THREADS, int LOADS, class V, class Store>
__device__ __forceinline__ void load_vectors(const V* src, int count, Store store) {
  for (int base = 0; base < count; base += LOADS * THREADS) {
    V v[LOADS];
#pragma unroll
    for (int j = 0; j < LOADS; ++j) {
      const int k = base + j * THREADS + int(threadIdx.x);
      if (k < count) v[j] = src[k];
    }
#pragma unroll
    for (int j = 0; j < LOADS; ++j) {
      const int k = base + j * THREADS + int(threadIdx.x);
      if (k < count) store(k, v[j]);
    }
  }
}

// A probe's spinning wait: the megakernel's Spin, with no launch's abort flag to watch. A CTA
// that never runs (the GPU shared with other work) would leave the rest spinning: after a
// second without progress expired() turns true, so the launch ends with an error, not a hang.
// (Spin keeps a reference to the launch's arguments; one in device memory, rather than a
// member, keeps them out of the waiting thread's stack.)
static __device__ const MegakernelArgs kProbeNoLaunch{};
class ProbeSpin {
 public:
  __device__ bool expired() { return spin_.poll() == SpinState::kExpired; }

 private:
  Spin spin_{kProbeNoLaunch, 1000000000ull, /*watch_abort=*/false};
};

// One thread's release of `counter` (+1) and its wait with the megakernel's acquire polls
// (wait_target's loop) until the counter reaches `target`; true when the wait gave up.
__device__ inline bool signal_and_wait(uint64_t* counter, uint64_t target) {
  red_release_gpu_add(counter, 1);
  ProbeSpin spin;
  while (ld_acquire_gpu(counter) < target) {
    if (spin.expired()) return true;
  }
  return false;
}

}  // namespace megalith::kernels
