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
  const int32_t rows = t.refs[1].rows;
  float* xs = env.scratch;
  float* acc = xs + linear_x_floats(x.cols);
  load_plain_row(env, x, 0, xs);
  if (!stream_matvec(env, t.refs[1], xs, acc, acc + rows)) return;
  for (int o = env.tid; o < rows; o += CONSUMER_THREADS) {
    const float b = bias.present() ? bias.get(0, o) : 0.0f;
    res.set(0, o, res.get(0, o) + (acc[o] + b));
  }
}

}  // namespace megalith::kernels
