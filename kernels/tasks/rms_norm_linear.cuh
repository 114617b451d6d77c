// out = rms_norm(x) * norm_weight @ W[tile]^T + bias[tile]: the input row is normalized into
// shared memory once its events have fired, then multiplied with the weight tile as it
// streams through the ring (already in flight before the wait); run_linear (tasks/linear.cuh)
// does both, this is the kind's epilogue.
#pragma once

#include "megakernel/task_env.cuh"

namespace megalith::kernels {

// acc: the tile's products, a row of the tile's rows per slot.
__device__ inline void finish_rms_norm_linear(TaskEnv& env, const abi::TaskDesc& t,
                                              const float* acc) {
  const Ref bias = env.ref(t, 3), out = env.ref(t, 4);
  const int32_t rows = t.refs[2].rows, slots = t.refs[0].rows;
  for (int b = 0; b < slots; ++b) {
    for (int o = env.tid; o < rows; o += CONSUMER_THREADS) {
      out.set(b, o, acc[b * rows + o] + (bias.present() ? bias.get(0, o) : 0.0f));
    }
  }
}

}  // namespace megalith::kernels
