// out = rms_norm(x) * norm_weight @ W[tile]^T + bias[tile]: the input row is normalized into
// shared memory once its events have fired, then multiplied with the weight tile as it
// streams through the ring (already in flight before the wait).
#pragma once

#include "megakernel/task_env.cuh"
#include "tasks/linear_claims.cuh"
#include "tasks/linear_common.cuh"

namespace megalith::kernels {

__device__ inline void run_rms_norm_linear(TaskEnv& env, const abi::TaskDesc& t) {
  if (claims_rows(env.args, t)) return run_claimed_linear(env, t);
  const Ref x = env.ref(t, 0), bias = env.ref(t, 3), out = env.ref(t, 4);
  const int32_t rows = t.refs[2].rows, slots = x.rows;
  const uint32_t x_floats = linear_x_floats(x.cols);
  const float* xs = load_slot_rows(env, t, /*norm=*/true);
  float* acc = env.scratch + (1 + slots) * x_floats;
  if (!stream_matvec(env, t.refs[2], xs, acc, acc + slots * rows, slots, x_floats)) return;
  for (int b = 0; b < slots; ++b) {
    for (int o = env.tid; o < rows; o += CONSUMER_THREADS) {
      out.set(b, o, acc[b * rows + o] + (bias.present() ? bias.get(0, o) : 0.0f));
    }
  }
}

}  // namespace megalith::kernels
