// One KV head: per-head RMS norm (Qwen3) and rotary (rotate-half, as transformers) on its
// query heads, in place, and on its key; key and value appended to the caches at the
// token's position. Angles in float and their cosine and sine in double, as the CPU reference
// computes them, so the two agree to the last bit of the rotation.
#pragma once

#include <math.h>

#include "common/reduce.cuh"
#include "megakernel/task_env.cuh"

namespace megalith::kernels {

// The refs of QkNormRopeKvAppend, which RopeAttention starts with too.
struct RopeRefs {
  Ref q, k, v, q_norm, k_norm, positions, inv_freq, k_cache, v_cache;
};
__device__ inline RopeRefs rope_refs(const TaskEnv& env, const abi::TaskDesc& t) {
  return {env.ref(t, 0), env.ref(t, 1), env.ref(t, 2), env.ref(t, 3), env.ref(t, 4),
          env.ref(t, 5), env.ref(t, 6), env.ref(t, 7), env.ref(t, 8)};
}

// Row r of the task: one warp per item (the query heads, the key, the value), every load of
// an item issued before any is used, since the task is a chain of memory latencies. The
// rotated query heads also go to `q_rotated` ([group][head_dim]) when it is given.
__device__ inline void norm_rope_row(const TaskEnv& env, const RopeRefs& f, const abi::RopeParams& p,
                                     int r, float* q_rotated) {
  constexpr int PAIRS = MAX_HEAD_DIM / 64;  // rotation pairs per lane
  const int hd = p.head_dim, group = p.group, half = hd / 2;
  const int items = group + 2;
  for (int item = env.warp; item < items; item += CONSUMER_WARPS) {
    const int32_t pos = f.positions.get_int(0, r);
    if (item == group + 1) {
      float vals[2 * PAIRS];
#pragma unroll
      for (int j = 0; j < 2 * PAIRS; ++j) {
        const int i = env.lane + 32 * j;
        vals[j] = i < hd ? f.v.get(r, i) : 0.0f;
      }
#pragma unroll
      for (int j = 0; j < 2 * PAIRS; ++j) {
        const int i = env.lane + 32 * j;
        if (i < hd) f.v_cache.set(pos, i, vals[j]);
      }
      continue;
    }
    const bool is_key = item == group;
    const Ref& src = is_key ? f.k : f.q;
    const Ref& gamma = is_key ? f.k_norm : f.q_norm;
    const int base = is_key ? 0 : item * hd;
    float x1[PAIRS], x2[PAIRS], g1[PAIRS], g2[PAIRS], freq[PAIRS];
#pragma unroll
    for (int j = 0; j < PAIRS; ++j) {
      const int i = env.lane + 32 * j;
      const bool used = i < half;
      x1[j] = used ? src.get(r, base + i) : 0.0f;
      x2[j] = used ? src.get(r, base + i + half) : 0.0f;
      g1[j] = used && gamma.present() ? gamma.get(0, i) : 1.0f;
      g2[j] = used && gamma.present() ? gamma.get(0, i + half) : 1.0f;
      freq[j] = used ? f.inv_freq.get(0, i) : 0.0f;
    }
    double sum_sq = 0;
#pragma unroll
    for (int j = 0; j < PAIRS; ++j) sum_sq += double(x1[j]) * double(x1[j]);
#pragma unroll
    for (int j = 0; j < PAIRS; ++j) sum_sq += double(x2[j]) * double(x2[j]);
    const float inv_rms =
        gamma.present() ? float(1.0 / sqrt(warp_sum(sum_sq) / double(hd) + double(p.eps))) : 1.0f;
#pragma unroll
    for (int j = 0; j < PAIRS; ++j) {
      const int i = env.lane + 32 * j;
      if (i >= half) break;
      float a = x1[j], b = x2[j];
      if (gamma.present()) {
        a = g1[j] * (a * inv_rms);
        b = g2[j] * (b * inv_rms);
      }
      const float angle = float(pos) * freq[j];
      const float c = float(cos(double(angle))), s = float(sin(double(angle)));
      // Separately rounded products, as the CPU computes them (no fused multiply-add).
      const float o1 = __fmul_rn(a, c) - __fmul_rn(b, s);
      const float o2 = __fmul_rn(b, c) + __fmul_rn(a, s);
      if (is_key) {
        f.k_cache.set(pos, i, o1);
        f.k_cache.set(pos, i + half, o2);
      } else {
        f.q.set(r, base + i, o1);
        f.q.set(r, base + i + half, o2);
        if (q_rotated != nullptr) {
          q_rotated[base + i] = o1;
          q_rotated[base + i + half] = o2;
        }
      }
    }
  }
}

__device__ inline void run_qk_norm_rope_kv_append(TaskEnv& env, const abi::TaskDesc& t) {
  const RopeRefs f = rope_refs(env, t);
  for (int r = 0; r < f.q.rows; ++r) norm_rope_row(env, f, t.params.rope, r, nullptr);
}

}  // namespace megalith::kernels
