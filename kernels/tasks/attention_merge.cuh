// Combines one KV head's split partials into the attention output, weighting each split by
// exp(its log-sum-exp - the largest), in double as the CPU reference does, and appends the
// step's key and value (split 0's new_kv) to the caches, which every split has read by now. Every row's
// log-sum-exps are loaded at once, then every output element reads its splits' partials
// together, so the task costs two memory latencies however many rows it has.
#pragma once

#include <math.h>

#include "megakernel/task_env.cuh"

namespace megalith::kernels {

constexpr int MERGE_LOADS = 16;

__device__ inline void run_attention_merge(TaskEnv& env, const abi::TaskDesc& t) {
  const Ref partial = env.ref(t, 0), lse = env.ref(t, 1), out = env.ref(t, 2);
  const abi::AttentionParams& p = t.params.attention;
  const int hd = p.head_dim, group = p.group, splits = p.num_splits;
  const int rows = partial.rows / splits;  // the query group
  float* weights = env.scratch;            // [row][split]
  const Ref new_kv = env.ref(t, 3), positions = env.ref(t, 4);
  const Ref k_cache = env.ref(t, 5), v_cache = env.ref(t, 6);
  const int32_t pos = positions.get_int(0, 0);
  for (int i = env.tid; i < hd; i += CONSUMER_THREADS) {
    k_cache.set(pos, i, new_kv.get(0, i));
    v_cache.set(pos, i, new_kv.get(0, hd + i));
  }
  for (int i = env.tid; i < rows * splits; i += CONSUMER_THREADS) {
    const int row = i / splits, s = i % splits;
    weights[i] = lse.get(s * rows + row, 0);
  }
  consumer_sync();
  if (env.tid < rows) {
    float* w = weights + env.tid * splits;
    double max_lse = -INFINITY;
    for (int s = 0; s < splits; ++s) max_lse = fmax(max_lse, double(w[s]));
    for (int s = 0; s < splits; ++s) w[s] = float(exp(double(w[s]) - max_lse));
  }
  consumer_sync();
  for (int o = env.tid; o < rows * hd; o += CONSUMER_THREADS) {
    const int row = o / hd, i = o % hd;
    const float* w = weights + row * splits;
    double total = 0, acc = 0;
    // MERGE_LOADS splits' partials loaded before any is used: one memory latency per batch.
    for (int s0 = 0; s0 < splits; s0 += MERGE_LOADS) {
      uint32_t v[MERGE_LOADS];  // raw bits: get() would wait for each load (dtype.cuh)
#pragma unroll
      for (int j = 0; j < MERGE_LOADS; ++j) {
        v[j] = s0 + j < splits ? partial.get_bits((s0 + j) * rows + row, i) : 0;
      }
#pragma unroll
      for (int j = 0; j < MERGE_LOADS; ++j) {
        if (s0 + j < splits) {
          total += double(w[s0 + j]);
          acc += double(w[s0 + j]) * double(partial.float_of(v[j]));
        }
      }
    }
    out.set(row / group, (row % group) * hd + i, float(acc / total));
  }
  consumer_sync();
}

}  // namespace megalith::kernels
