// What a task's device code sees while the consumer warps run it: the launch, the step, its
// shared-memory scratch, the reduction area and the weight ring.
//
//   __device__ void run_embedding(TaskEnv& env, const abi::TaskDesc& t) {
//     const Ref x = env.ref(t, 4);
//     for (int i = env.tid; i < x.cols; i += CONSUMER_THREADS) ...
//   }
#pragma once

#include <stdint.h>

#include "common/dtype.cuh"
#include "megakernel/layout.h"
#include "megakernel/weight_ring.cuh"

namespace megalith::kernels {

struct TaskEnv {
  const MegakernelArgs& args;
  int64_t step;
  uint32_t task;
  float* scratch;      // task_scratch_floats(t) floats
  double* reduce;      // CONSUMER_WARPS doubles, for block_sum() and block_argmax()
  float* chunk_sums;   // 2 * CONSUMER_WARPS floats, the per-chunk partial dot products
  RingReader ring;
  bool failed;         // the ring's watchdog fired; the same on every consumer thread
  // An attention task's cache rows 0 .. staged_rows - 1 copied into the idle ring before it
  // waited (attention_partial.cuh, start_cache_staging).
  int staged_rows;
  int tid, warp, lane;
  // Traced launches only, on thread 0: when the task began and ended streaming weights, and
  // how long it waited for chunks to land in between.
  uint64_t stream_begin_ns = 0, stream_end_ns = 0;
  uint32_t stalled_ns = 0;

  __device__ Ref ref(const abi::TaskDesc& t, int i) const { return make_ref(t.refs[i]); }

  // The next chunk's stage of the ring; nullptr (and failed) when the watchdog fired.
  __device__ const uint8_t* next_stage() {
    const bool timed = args.trace != nullptr && tid == 0;
    const uint64_t begin = timed ? global_timer_ns() : 0;
    const uint8_t* stage = ring.wait(args, task, step);
    if (timed) stalled_ns += uint32_t(global_timer_ns() - begin);
    if (stage == nullptr) failed = true;
    return stage;
  }
};

// A task the launch's kernel paths do not cover (the host picks the paths that cover the
// graph, so only a bug gets here): the launch ends with an error naming it.
__device__ inline void fail_unsupported(TaskEnv& env) {
  env.failed = true;
  if (env.tid == 0) {
    report_fault(env.args, MegakernelFault::kUnsupportedTask, env.task, env.step, abi::kNoEvent, 0,
                 0);
  }
}

// A consumer thread's environment in the shared memory of layout.h, reading `ring`.
__device__ inline TaskEnv consumer_env(const MegakernelArgs& args, const Ring& ring, uint8_t* smem) {
  return {args,
          args.first_step,
          0,
          reinterpret_cast<float*>(smem + SMEM_SCRATCH_OFFSET),
          reinterpret_cast<double*>(smem + SMEM_REDUCE_OFFSET),
          reinterpret_cast<float*>(smem + SMEM_REDUCE_OFFSET + CONSUMER_WARPS * 8 * 2),
          RingReader(ring),
          false,
          0,
          int(threadIdx.x),
          int(threadIdx.x) / 32,
          int(threadIdx.x) % 32};
}

}  // namespace megalith::kernels
