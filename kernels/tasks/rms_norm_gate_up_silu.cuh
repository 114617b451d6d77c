// out = silu(h @ Wg[tile]^T + bg) * (h @ Wu[tile]^T + bu), h = rms_norm(x) * norm_weight: the
// gate tile streams first, then the up tile, both against the same normalized row
// (run_linear, tasks/linear.cuh); this is the kind's epilogue.
#pragma once

#include <math.h>

#include "megakernel/task_env.cuh"

namespace megalith::kernels {

// acc: the gate tile's products (a row of the tile's rows per slot), then the up tile's.
__device__ inline void finish_rms_norm_gate_up_silu(TaskEnv& env, const abi::TaskDesc& t,
                                                    const float* acc) {
  const Ref gate_bias = env.ref(t, 4), up_bias = env.ref(t, 5), out = env.ref(t, 6);
  const int32_t rows = t.refs[2].rows, slots = t.refs[0].rows;
  const float* gate = acc;
  const float* up = acc + slots * rows;
  for (int b = 0; b < slots; ++b) {
    for (int o = env.tid; o < rows; o += CONSUMER_THREADS) {
      const float g = gate[b * rows + o] + (gate_bias.present() ? gate_bias.get(0, o) : 0.0f);
      const float u = up[b * rows + o] + (up_bias.present() ? up_bias.get(0, o) : 0.0f);
      out.set(b, o, g / (1.0f + expf(-g)) * u);
    }
  }
}

}  // namespace megalith::kernels
