// One vocabulary tile: logits[tile] = rms_norm(x) * norm_weight @ W[tile]^T, and the tile's
// summary for the sampler: max and argmax (lowest id on ties), the sum of exp(logit - max),
// and the Gumbel-max sample when the temperature is positive.
#pragma once

#include <math.h>

#include "common/reduce.cuh"
#include "megakernel/task_env.cuh"
#include "tasks/linear_common.cuh"

namespace megalith::kernels {

__device__ inline void run_lm_head(TaskEnv& env, const abi::TaskDesc& t) {
  const Ref x = env.ref(t, 0), control = env.ref(t, 3);
  const Ref logits = env.ref(t, 4), partials = env.ref(t, 5);
  const int32_t rows = t.refs[2].rows, row_begin = t.params.linear.row_begin, slots = x.rows;
  const uint32_t x_floats = linear_x_floats(x.cols);
  const float* xs = load_slot_rows(env, t, /*norm=*/true);
  float* acc_all = env.scratch + (1 + slots) * x_floats;
  if (!stream_matvec(env, t.refs[2], xs, acc_all, acc_all + slots * rows, slots, x_floats)) return;

  for (int b = 0; b < slots; ++b) {
    const float* acc = acc_all + b * rows;
    const abi::StepControl c = control.row_as<const abi::StepControl>(b);
    const int32_t pos = abi::slot_position(c, env.step);
    const uint64_t seed = uint64_t(c.seed_hi) << 32 | c.seed_lo;
    ArgMax best{-INFINITY, 0}, sampled{-INFINITY, 0};
    for (int o = env.tid; o < rows; o += CONSUMER_THREADS) {
      const float l = acc[o];
      const int32_t id = row_begin + o;
      logits.set(b, o, l);
      best = better(best, {l, id});
      if (c.temperature > 0) {
        const double u = abi::sampling_uniform(seed, pos, id);
        sampled = better(sampled, {float(double(l) / double(c.temperature) - log(-log(u))), id});
      }
    }
    best = block_argmax(best, env.reduce);
    sampled = block_argmax(sampled, env.reduce);
    double sum = 0;
    for (int o = env.tid; o < rows; o += CONSUMER_THREADS) sum += double(expf(acc[o] - best.value));
    sum = block_sum(sum, env.reduce);
    if (env.tid == 0) {
      partials.as<abi::LmPartial>()[b] = {best.value, best.id, float(sum), sampled.value,
                                          sampled.id, 0};
    }
  }
}

}  // namespace megalith::kernels
