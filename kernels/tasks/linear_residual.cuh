// residual[tile] += x @ W[tile]^T + bias[tile], in place: the worker owning these output
// columns is the only one touching them this step.
#pragma once

#include "megakernel/task_env.cuh"
#include "tasks/linear_claims.cuh"
#include "tasks/linear_common.cuh"

namespace megalith::kernels {

__device__ inline void run_linear_residual(TaskEnv& env, const abi::TaskDesc& t) {
  if (claims_rows(env.args, t)) return run_claimed_linear(env, t);
  const Ref x = env.ref(t, 0), bias = env.ref(t, 2), res = env.ref(t, 3);
  const int32_t rows = t.refs[1].rows, slots = x.rows;
  const uint32_t x_floats = linear_x_floats(x.cols);
  const float* xs = load_slot_rows(env, t, /*norm=*/false);
  float* acc = env.scratch + slots * x_floats;
  if (!stream_matvec(env, t.refs[1], xs, acc, acc + slots * rows, slots, x_floats)) return;
  for (int b = 0; b < slots; ++b) {
    for (int o = env.tid; o < rows; o += CONSUMER_THREADS) {
      const float bias_o = bias.present() ? bias.get(0, o) : 0.0f;
      res.set(b, o, res.get(b, o) + (acc[b * rows + o] + bias_o));
    }
  }
}

}  // namespace megalith::kernels
