// Split-KV decode attention of one KV head's query group over one slice of the visible cache
// rows: the slice's softmax-normalized output and its log-sum-exp (-inf when the slice is
// empty) per query row. Each consumer warp keeps an online softmax over every 8th key of the
// slice; the warps' states are merged at the end.
#pragma once

#include <math.h>

#include "common/reduce.cuh"
#include "megakernel/task_env.cuh"

namespace megalith::kernels {

__device__ inline void run_attention_partial(TaskEnv& env, const abi::TaskDesc& t) {
  const Ref q = env.ref(t, 0), k_cache = env.ref(t, 1), v_cache = env.ref(t, 2);
  const Ref positions = env.ref(t, 3), partial = env.ref(t, 4), lse = env.ref(t, 5);
  const abi::AttentionParams& p = t.params.attention;
  const int hd = p.head_dim, group = p.group;
  constexpr int DIMS_PER_LANE = MAX_HEAD_DIM / 32;
  float* qs = env.scratch;
  float* states = env.scratch + hd;  // per warp: max, sum, then hd output values
  float* state = states + env.warp * (hd + 2);
  for (int r = 0; r < q.rows; ++r) {
    const int visible = positions.get_int(0, r) + 1;
    const int chunk = (visible + p.num_splits - 1) / p.num_splits;
    const int begin = min(visible, p.split * chunk), end = min(visible, begin + chunk);
    for (int g = 0; g < group; ++g) {
      const int row = r * group + g;
      if (begin == end) {
        for (int i = env.tid; i < hd; i += CONSUMER_THREADS) partial.set(row, i, 0.0f);
        if (env.tid == 0) lse.set(row, 0, -INFINITY);
        continue;
      }
      for (int i = env.tid; i < hd; i += CONSUMER_THREADS) qs[i] = q.get(r, g * hd + i);
      consumer_sync();
      float m = -INFINITY, l = 0, acc[DIMS_PER_LANE];
#pragma unroll
      for (int j = 0; j < DIMS_PER_LANE; ++j) acc[j] = 0;
      for (int s = begin + env.warp; s < end; s += CONSUMER_WARPS) {
        float dot = 0;
        for (int i = env.lane; i < hd; i += 32) dot = fmaf(qs[i], k_cache.get(s, i), dot);
        const float score = warp_sum(dot) * p.scale;
        const float m_new = fmaxf(m, score);
        const float correction = expf(m - m_new), weight = expf(score - m_new);
        l = l * correction + weight;
#pragma unroll
        for (int j = 0; j < DIMS_PER_LANE; ++j) {
          const int i = env.lane + 32 * j;
          if (i < hd) acc[j] = acc[j] * correction + weight * v_cache.get(s, i);
        }
        m = m_new;
      }
      if (env.lane == 0) {
        state[0] = m;
        state[1] = l;
      }
#pragma unroll
      for (int j = 0; j < DIMS_PER_LANE; ++j) {
        const int i = env.lane + 32 * j;
        if (i < hd) state[2 + i] = acc[j];
      }
      consumer_sync();
      // Warps that saw no key hold max -inf and weigh nothing.
      float max_all = -INFINITY;
      for (int w = 0; w < CONSUMER_WARPS; ++w) max_all = fmaxf(max_all, states[w * (hd + 2)]);
      float total = 0;
      for (int w = 0; w < CONSUMER_WARPS; ++w) {
        const float* sw = states + w * (hd + 2);
        total += sw[1] * expf(sw[0] - max_all);
      }
      for (int i = env.tid; i < hd; i += CONSUMER_THREADS) {
        float o = 0;
        for (int w = 0; w < CONSUMER_WARPS; ++w) {
          const float* sw = states + w * (hd + 2);
          o += sw[2 + i] * expf(sw[0] - max_all);
        }
        partial.set(row, i, o / total);
      }
      if (env.tid == 0) lse.set(row, 0, max_all + logf(total));
      consumer_sync();
    }
  }
}

}  // namespace megalith::kernels
