// Combines one KV head's split partials into the attention output, weighting each split by
// exp(its log-sum-exp - the largest), in double as the CPU reference does.
#pragma once

#include <math.h>

#include "megakernel/task_env.cuh"

namespace megalith::kernels {

__device__ inline void run_attention_merge(TaskEnv& env, const abi::TaskDesc& t) {
  const Ref partial = env.ref(t, 0), lse = env.ref(t, 1), out = env.ref(t, 2);
  const abi::AttentionParams& p = t.params.attention;
  const int hd = p.head_dim, group = p.group, splits = p.num_splits;
  const int rows_per_split = partial.rows / splits;  // tokens * group
  float* weights = env.scratch;
  for (int row = 0; row < rows_per_split; ++row) {
    // Each split's log-sum-exp is loaded once, all in parallel, then shared.
    for (int s = env.tid; s < splits; s += CONSUMER_THREADS) {
      weights[s] = lse.get(s * rows_per_split + row, 0);
    }
    consumer_sync();
    double max_lse = -INFINITY;
    for (int s = 0; s < splits; ++s) max_lse = fmax(max_lse, double(weights[s]));
    consumer_sync();
    for (int s = env.tid; s < splits; s += CONSUMER_THREADS) {
      weights[s] = float(exp(double(weights[s]) - max_lse));
    }
    consumer_sync();
    double total = 0;
    for (int s = 0; s < splits; ++s) total += double(weights[s]);
    const int r = row / group, g = row % group;
    for (int i = env.tid; i < hd; i += CONSUMER_THREADS) {
      double acc = 0;
#pragma unroll 8
      for (int s = 0; s < splits; ++s) {
        acc += double(weights[s]) * double(partial.get(s * rows_per_split + row, i));
      }
      out.set(r, g * hd + i, float(acc / total));
    }
    consumer_sync();
  }
}

}  // namespace megalith::kernels
