// One vocabulary tile: logits[tile] = rms_norm(x) * norm_weight @ W[tile]^T, and the tile's
// summary for the sampler: max and argmax (lowest id on ties), the sum of exp(logit - max),
// and the Gumbel-max sample when the temperature is positive. run_linear (tasks/linear.cuh)
// normalizes x and multiplies; this is the kind's epilogue.
#pragma once

#include <math.h>

#include "common/reduce.cuh"
#include "megakernel/task_env.cuh"

namespace megalith::kernels {

// acc: the tile's logits, a row of the tile's rows per slot.
__device__ inline void finish_lm_head(TaskEnv& env, const abi::TaskDesc& t, const float* acc_all) {
  const Ref control = env.ref(t, 3), logits = env.ref(t, 4), partials = env.ref(t, 5);
  const int32_t rows = t.refs[2].rows, row_begin = t.params.linear.row_begin, slots = t.refs[0].rows;
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
