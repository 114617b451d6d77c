// One KV head: per-head RMS norm (Qwen3) and rotary (rotate-half, as transformers) on its
// query heads, in place, and on its key; key and value appended to the caches at the
// token's position. Angles in float and their cosine and sine in double, as the CPU reference
// computes them, so the two agree to the last bit of the rotation.
#pragma once

#include <math.h>

#include "common/reduce.cuh"
#include "megakernel/task_env.cuh"

namespace megalith::kernels {

__device__ inline void run_qk_norm_rope_kv_append(TaskEnv& env, const abi::TaskDesc& t) {
  const Ref q = env.ref(t, 0), k = env.ref(t, 1), v = env.ref(t, 2), q_norm = env.ref(t, 3);
  const Ref k_norm = env.ref(t, 4), positions = env.ref(t, 5), inv_freq = env.ref(t, 6);
  const Ref k_cache = env.ref(t, 7), v_cache = env.ref(t, 8);
  const int hd = t.params.rope.head_dim, group = t.params.rope.group, half = hd / 2;
  const double eps = t.params.rope.eps;
  // The value rows are loaded with the heads (a store ahead of the heads' loads would hold
  // them back: they might alias) and appended last; a decode step's fit in one load a thread.
  const int values = q.rows * hd;
  const float first_value = env.tid < values ? v.get(env.tid / hd, env.tid % hd) : 0.0f;
  // One warp per head (heads 0..group-1 of each row are the queries, head `group` the key),
  // all heads at once: the task is a chain of memory latencies, so it runs them side by side.
  float* head = env.scratch + env.warp * hd;
  const int heads = group + 1;
  for (int item = env.warp; item < q.rows * heads; item += CONSUMER_WARPS) {
    const int r = item / heads, h = item % heads;
    const int32_t pos = positions.get_int(0, r);
    const bool is_key = h == group;
    const Ref& src = is_key ? k : q;
    const Ref& gamma = is_key ? k_norm : q_norm;
    const int base = is_key ? 0 : h * hd;
    // The lane's norm weights and frequencies are loaded with the head, not after it: the
    // task is a chain of memory latencies.
    constexpr int PAIRS = MAX_HEAD_DIM / 64;  // rotation pairs per lane
    float g1[PAIRS], g2[PAIRS], freq[PAIRS];
#pragma unroll
    for (int j = 0; j < PAIRS; ++j) {
      const int i = env.lane + 32 * j;
      const bool used = i < half;
      g1[j] = used && gamma.present() ? gamma.get(0, i) : 1.0f;
      g2[j] = used && gamma.present() ? gamma.get(0, i + half) : 1.0f;
      freq[j] = used ? inv_freq.get(0, i) : 0.0f;
    }
    double sum_sq = 0;
    for (int i = env.lane; i < hd; i += 32) {
      head[i] = src.get(r, base + i);
      sum_sq += double(head[i]) * double(head[i]);
    }
    const float inv_rms =
        gamma.present() ? float(1.0 / sqrt(warp_sum(sum_sq) / double(hd) + eps)) : 1.0f;
    __syncwarp();
#pragma unroll
    for (int j = 0; j < PAIRS; ++j) {
      const int i = env.lane + 32 * j;
      if (i >= half) break;
      float x1 = head[i], x2 = head[i + half];
      if (gamma.present()) {
        x1 = g1[j] * (x1 * inv_rms);
        x2 = g2[j] * (x2 * inv_rms);
      }
      const float angle = float(pos) * freq[j];
      const float c = float(cos(double(angle))), s = float(sin(double(angle)));
      // Separately rounded products, as the CPU computes them (no fused multiply-add).
      const float o1 = __fmul_rn(x1, c) - __fmul_rn(x2, s);
      const float o2 = __fmul_rn(x2, c) + __fmul_rn(x1, s);
      if (is_key) {
        k_cache.set(pos, i, o1);
        k_cache.set(pos, i + half, o2);
      } else {
        q.set(r, base + i, o1);
        q.set(r, base + i + half, o2);
      }
    }
    // The warp's head buffer is refilled by its next item.
    __syncwarp();
  }
  if (env.tid < values) v_cache.set(positions.get_int(0, env.tid / hd), env.tid % hd, first_value);
  for (int i = env.tid + CONSUMER_THREADS; i < values; i += CONSUMER_THREADS) {
    v_cache.set(positions.get_int(0, i / hd), i % hd, v.get(i / hd, i % hd));
  }
}

}  // namespace megalith::kernels
