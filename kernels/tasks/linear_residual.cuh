// residual[tile] += x @ W[tile]^T + bias[tile], in place: the worker owning these output
// columns is the only one touching them this step. run_linear (tasks/linear.cuh) loads x and
// multiplies; this is the kind's epilogue.
#pragma once

#include "megakernel/task_env.cuh"

namespace megalith::kernels {

// acc: the tile's products, a row of the tile's rows per slot.
__device__ inline void finish_linear_residual(TaskEnv& env, const abi::TaskDesc& t,
                                              const float* acc) {
  const Ref bias = env.ref(t, 2), res = env.ref(t, 3);
  const int32_t rows = t.refs[1].rows, slots = t.refs[0].rows;
  for (int b = 0; b < slots; ++b) {
    for (int o = env.tid; o < rows; o += CONSUMER_THREADS) {
      const float bias_o = bias.present() ? bias.get(0, o) : 0.0f;
      res.set(b, o, res.get(b, o) + (acc[b * rows + o] + bias_o));
    }
  }
}

}  // namespace megalith::kernels
