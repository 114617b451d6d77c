// Split-KV decode attention of one KV head's query group over one slice of the visible cache
// rows: the slice's softmax-normalized output and its log-sum-exp (-inf when the slice is
// empty) per query row; with a single split (no lse ref) the attention output itself. Each consumer warp keeps an online softmax over every 8th key of the
// slice for up to ATTENTION_ROWS query heads at once, so each key and value row is loaded once
// for all of them; the warps' states are merged at the end.
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
  float* qs = env.scratch;                             // ATTENTION_ROWS query heads
  float* states = env.scratch + ATTENTION_ROWS * hd;   // [warp][head]: max, sum, output row
  auto state_of = [&](int warp, int h) { return states + (warp * ATTENTION_ROWS + h) * (hd + 2); };
  // With a single split (no lse ref) the output is the attention output: heads side by side.
  const bool split = lse.present();
  const auto out = [&](int r, int g, int i, float v) {
    if (split) {
      partial.set(r * group + g, i, v);
    } else {
      partial.set(r, g * hd + i, v);
    }
  };
  for (int r = 0; r < q.rows; ++r) {
    const int visible = positions.get_int(0, r) + 1;
    const int chunk = (visible + p.num_splits - 1) / p.num_splits;
    const int begin = min(visible, p.split * chunk), end = min(visible, begin + chunk);
    for (int g0 = 0; g0 < group; g0 += ATTENTION_ROWS) {
      const int heads = min(ATTENTION_ROWS, group - g0);
      if (begin == end) {
        for (int i = env.tid; i < heads * hd; i += CONSUMER_THREADS) out(r, g0 + i / hd, i % hd, 0.0f);
        if (split && env.tid < heads) lse.set(r * group + g0 + env.tid, 0, -INFINITY);
        continue;
      }
      for (int i = env.tid; i < heads * hd; i += CONSUMER_THREADS) qs[i] = q.get(r, g0 * hd + i);
      consumer_sync();
      float m[ATTENTION_ROWS], l[ATTENTION_ROWS], acc[ATTENTION_ROWS][DIMS_PER_LANE];
#pragma unroll
      for (int h = 0; h < ATTENTION_ROWS; ++h) {
        m[h] = -INFINITY;
        l[h] = 0;
#pragma unroll
        for (int j = 0; j < DIMS_PER_LANE; ++j) acc[h][j] = 0;
      }
      // The key and value rows' elements of this lane; the next row's loads are in flight
      // while this one is used, so a warp waits one memory latency, not one per key.
      const auto load_kv = [&](int s, float (&kv)[DIMS_PER_LANE], float (&vv)[DIMS_PER_LANE]) {
#pragma unroll
        for (int j = 0; j < DIMS_PER_LANE; ++j) {
          const int i = env.lane + 32 * j;
          kv[j] = i < hd && s < end ? k_cache.get(s, i) : 0.0f;
          vv[j] = i < hd && s < end ? v_cache.get(s, i) : 0.0f;
        }
      };
      float kv[DIMS_PER_LANE], vv[DIMS_PER_LANE];
      load_kv(begin + env.warp, kv, vv);
      for (int s = begin + env.warp; s < end; s += CONSUMER_WARPS) {
        float kn[DIMS_PER_LANE], vn[DIMS_PER_LANE];
        load_kv(s + CONSUMER_WARPS, kn, vn);
#pragma unroll
        for (int h = 0; h < ATTENTION_ROWS; ++h) {
          if (h >= heads) break;
          float dot = 0;
#pragma unroll
          for (int j = 0; j < DIMS_PER_LANE; ++j) {
            const int i = env.lane + 32 * j;
            if (i < hd) dot = fmaf(qs[h * hd + i], kv[j], dot);
          }
          const float score = warp_sum(dot) * p.scale;
          const float m_new = fmaxf(m[h], score);
          const float correction = expf(m[h] - m_new), weight = expf(score - m_new);
          l[h] = l[h] * correction + weight;
#pragma unroll
          for (int j = 0; j < DIMS_PER_LANE; ++j) acc[h][j] = acc[h][j] * correction + weight * vv[j];
          m[h] = m_new;
        }
#pragma unroll
        for (int j = 0; j < DIMS_PER_LANE; ++j) {
          kv[j] = kn[j];
          vv[j] = vn[j];
        }
      }
#pragma unroll
      for (int h = 0; h < ATTENTION_ROWS; ++h) {
        if (h >= heads) break;
        float* state = state_of(env.warp, h);
        if (env.lane == 0) {
          state[0] = m[h];
          state[1] = l[h];
        }
#pragma unroll
        for (int j = 0; j < DIMS_PER_LANE; ++j) {
          const int i = env.lane + 32 * j;
          if (i < hd) state[2 + i] = acc[h][j];
        }
      }
      consumer_sync();
      // Warps that saw no key hold max -inf and weigh nothing.
      for (int o = env.tid; o < heads * hd; o += CONSUMER_THREADS) {
        const int h = o / hd, i = o % hd;
        float max_all = -INFINITY;
        for (int w = 0; w < CONSUMER_WARPS; ++w) max_all = fmaxf(max_all, state_of(w, h)[0]);
        float total = 0, sum = 0;
        for (int w = 0; w < CONSUMER_WARPS; ++w) {
          const float* sw = state_of(w, h);
          const float scale = expf(sw[0] - max_all);
          total += sw[1] * scale;
          sum += sw[2 + i] * scale;
        }
        out(r, g0 + h, i, sum / total);
        if (split && i == 0) lse.set(r * group + g0 + h, 0, max_all + logf(total));
      }
      consumer_sync();
    }
  }
}

}  // namespace megalith::kernels
