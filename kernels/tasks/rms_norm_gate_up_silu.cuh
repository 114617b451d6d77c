// out = silu(h @ Wg[tile]^T + bg) * (h @ Wu[tile]^T + bu), h = rms_norm(x) * norm_weight: the
// gate tile streams first, then the up tile, both against the same normalized row.
#pragma once

#include "megakernel/task_env.cuh"
#include "tasks/linear_claims.cuh"
#include "tasks/linear_common.cuh"

namespace megalith::kernels {

__device__ inline void run_rms_norm_gate_up_silu(TaskEnv& env, const abi::TaskDesc& t) {
  if (claims_rows(env.args, t)) return run_claimed_linear(env, t);
  const Ref x = env.ref(t, 0), gate_bias = env.ref(t, 4);
  const Ref up_bias = env.ref(t, 5), out = env.ref(t, 6);
  const int32_t rows = t.refs[2].rows;
  float* xs = env.scratch + linear_x_floats(x.cols);  // after the staged norm weight
  float* gate = xs + linear_x_floats(x.cols);
  float* up = gate + rows;
  load_normalized_row(env, t, xs);
  if (!stream_matvec(env, t.refs[2], xs, gate, up + rows)) return;
  if (!stream_matvec(env, t.refs[3], xs, up, up + rows)) return;
  for (int o = env.tid; o < rows; o += CONSUMER_THREADS) {
    const float g = gate[o] + (gate_bias.present() ? gate_bias.get(0, o) : 0.0f);
    const float u = up[o] + (up_bias.present() ? up_bias.get(0, o) : 0.0f);
    out.set(0, o, g / (1.0f + expf(-g)) * u);
  }
}

}  // namespace megalith::kernels
