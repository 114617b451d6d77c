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
  const int32_t rows = t.refs[2].rows, slots = x.rows;
  const uint32_t x_floats = linear_x_floats(x.cols);
  const float* xs = load_slot_rows(env, t, /*norm=*/true);
  float* gate = env.scratch + (1 + slots) * x_floats;
  float* up = gate + slots * rows;
  if (!stream_matvec(env, t.refs[2], xs, gate, up + slots * rows, slots, x_floats)) return;
  if (!stream_matvec(env, t.refs[3], xs, up, up + slots * rows, slots, x_floats)) return;
  for (int b = 0; b < slots; ++b) {
    for (int o = env.tid; o < rows; o += CONSUMER_THREADS) {
      const float g = gate[b * rows + o] + (gate_bias.present() ? gate_bias.get(0, o) : 0.0f);
      const float u = up[b * rows + o] + (up_bias.present() ? up_bias.get(0, o) : 0.0f);
      out.set(b, o, g / (1.0f + expf(-g)) * u);
    }
  }
}

}  // namespace megalith::kernels
