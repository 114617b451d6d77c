// Split-KV decode attention of one KV head's query group over one slice of the visible cache
// rows: the slice's softmax-normalized output and its log-sum-exp (-inf when the slice is
// empty) per query row; with a single split (no lse ref) the attention output itself.
//
// Two passes compute it. The vector pass (cache rows of at most 256 bytes at 16-byte aligned
// addresses: head_dim 128 in bf16/f16, the common case) works on blocks of up to 256 keys:
// every key row of the block is loaded at once, 4 lanes a row, and scored against up to
// ATTENTION_ROWS query heads; one warp per head turns the block's scores into softmax
// weights; then key groups of threads accumulate weights x value rows, one 16-byte vector
// column each, and their sums are added up. The loads of a block are all in flight together,
// so a block costs a few memory latencies whatever its length. The scalar pass handles every
// other shape: each consumer warp keeps an online softmax over every 8th key.
#pragma once

#include <math.h>

#include "common/reduce.cuh"
#include "megakernel/task_env.cuh"

namespace megalith::kernels {

// The writer of a pass's results: the split's partial rows and log-sum-exp, or with a single
// split the attention output (row r, the group's heads side by side).
struct AttentionOut {
  Ref partial, lse;
  int hd, group;
  __device__ void set(int r, int g, int i, float v) const {
    if (lse.present()) {
      partial.set(r * group + g, i, v);
    } else {
      partial.set(r, g * hd + i, v);
    }
  }
  __device__ void set_lse(int r, int g, float v) const {
    if (lse.present()) lse.set(r * group + g, 0, v);
  }
  // An empty slice's results for query heads g0 .. g0 + heads - 1: zeros, log-sum-exp -inf.
  __device__ void set_empty(int tid, int r, int g0, int heads) const {
    for (int i = tid; i < heads * hd; i += CONSUMER_THREADS) set(r, g0 + i / hd, i % hd, 0.0f);
    if (tid < heads) set_lse(r, g0 + tid, -INFINITY);
  }
};

// The cache rows [begin, end) this split of the visible ones covers for query row r.
struct KeySlice {
  int begin, end;
};
__device__ inline KeySlice split_slice(const abi::AttentionParams& p, const Ref& positions, int r) {
  const int visible = positions.get_int(0, r) + 1;
  const int chunk = (visible + p.num_splits - 1) / p.num_splits;
  const int begin = min(visible, p.split * chunk);
  return {begin, min(visible, begin + chunk)};
}

// DIMS_PER_LANE: head dimensions per lane, head_dim / 32 rounded up to 4 or 8; the state of a
// pass lives in registers, and the common head_dim 128 needs half of what 256 does.
template <int DIMS_PER_LANE>
__device__ void attention_partial_scalar(TaskEnv& env, const abi::TaskDesc& t) {
  const Ref q = env.ref(t, 0), k_cache = env.ref(t, 1), v_cache = env.ref(t, 2);
  const Ref positions = env.ref(t, 3);
  const abi::AttentionParams& p = t.params.attention;
  const int hd = p.head_dim, group = p.group;
  const AttentionOut out{env.ref(t, 4), env.ref(t, 5), hd, group};
  float* qs = env.scratch;                             // ATTENTION_ROWS query heads
  float* states = env.scratch + ATTENTION_ROWS * hd;   // [warp][head]: max, sum, output row
  auto state_of = [&](int warp, int h) { return states + (warp * ATTENTION_ROWS + h) * (hd + 2); };
  for (int r = 0; r < q.rows; ++r) {
    const KeySlice slice = split_slice(p, positions, r);
    const int begin = slice.begin, end = slice.end;
    for (int g0 = 0; g0 < group; g0 += ATTENTION_ROWS) {
      const int heads = min(ATTENTION_ROWS, group - g0);
      if (begin == end) {
        out.set_empty(env.tid, r, g0, heads);
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
        out.set(r, g0 + h, i, sum / total);
        if (i == 0) out.set_lse(r, g0 + h, max_all + logf(total));
      }
      consumer_sync();
    }
  }
}

// The 8 bf16 or f16 values of a 16-byte vector as floats (one pass serves both types: a
// second instantiation costs the hot kernel registers).
__device__ __forceinline__ VecF<__half> unpack_half8(const uint4& raw, bool f16) {
  if (f16) return unpack_vec<__half>(raw);
  const VecF<__nv_bfloat16> b = unpack_vec<__nv_bfloat16>(raw);
  VecF<__half> out;
#pragma unroll
  for (int i = 0; i < 8; ++i) out.v[i] = b.v[i];
  return out;
}

__device__ inline void attention_partial_vector(TaskEnv& env, const abi::TaskDesc& t, bool f16) {
  constexpr int V = 8;                                   // bf16 or f16 elements per 16-byte vector
  constexpr int LANES = ATTENTION_KEY_LANES, KB = ATTENTION_KEY_BLOCK;
  constexpr int VPL = ATTENTION_MAX_ROW_BYTES / 16 / LANES;  // a row's vectors per lane
  constexpr int KEYS_PER_ROUND = CONSUMER_THREADS / LANES;
  const Ref q = env.ref(t, 0), k_cache = env.ref(t, 1), v_cache = env.ref(t, 2);
  const Ref positions = env.ref(t, 3);
  const abi::AttentionParams& p = t.params.attention;
  const int hd = p.head_dim, group = p.group, nv = hd / V;
  const AttentionOut out{env.ref(t, 4), env.ref(t, 5), hd, group};
  const int64_t k_stride = k_cache.stride * 2, v_stride = v_cache.stride * 2;
  float* qs = env.scratch;                         // [ATTENTION_ROWS][hd]
  float* acc = qs + ATTENTION_ROWS * hd;           // [ATTENTION_ROWS][hd] running outputs
  float* scores = acc + ATTENTION_ROWS * hd;       // [ATTENTION_ROWS][KB]
  float* state = scores + ATTENTION_ROWS * KB;     // [ATTENTION_ROWS]: max, sum, correction
  float* group_sums = state + 4 * ATTENTION_ROWS;  // [key group][ATTENTION_ROWS][hd]
  // Phase 1's lanes: LANES per key, each with vectors lane_in_key, lane_in_key + LANES, ... of the row.
  const int lane_in_key = env.lane % LANES, warp_keys = 32 / LANES;
  // Phase 2's threads: vector column `column` of the value rows of key group `key_group`.
  const int key_groups = CONSUMER_THREADS / nv;
  const int column = env.tid % nv, key_group = env.tid / nv;

  for (int r = 0; r < q.rows; ++r) {
    const KeySlice slice = split_slice(p, positions, r);
    const int begin = slice.begin, end = slice.end;
    for (int g0 = 0; g0 < group; g0 += ATTENTION_ROWS) {
      const int heads = min(ATTENTION_ROWS, group - g0);
      if (begin == end) {
        out.set_empty(env.tid, r, g0, heads);
        continue;
      }
      for (int i = env.tid; i < heads * hd; i += CONSUMER_THREADS) {
        qs[i] = q.get(r, g0 * hd + i) * p.scale;
        acc[i] = 0;
      }
      if (env.tid < heads) {
        state[4 * env.tid] = -INFINITY;
        state[4 * env.tid + 1] = 0;
      }
      consumer_sync();
      for (int kb = begin; kb < end; kb += KB) {
        const int nb = min(KB, end - kb);
        // Phase 1: the block's scores, two keys per lane group at a time. The loop bound is
        // the warp's, so every lane takes part in the shuffles.
        for (int w0 = env.warp * warp_keys; w0 < nb; w0 += 2 * KEYS_PER_ROUND) {
          const int k0 = w0 + env.lane / LANES;
          uint4 raw[2][VPL];
#pragma unroll
          for (int u = 0; u < 2; ++u) {
            const int key = k0 + u * KEYS_PER_ROUND;
            const uint8_t* row = k_cache.data + (kb + key) * k_stride;
#pragma unroll
            for (int i = 0; i < VPL; ++i) {
              const int v = lane_in_key + LANES * i;
              raw[u][i] = key < nb && v < nv ? *reinterpret_cast<const uint4*>(row + v * 16)
                                             : make_uint4(0, 0, 0, 0);
            }
          }
#pragma unroll
          for (int u = 0; u < 2; ++u) {
            float dot[ATTENTION_ROWS] = {};
#pragma unroll
            for (int i = 0; i < VPL; ++i) {
              const int v = lane_in_key + LANES * i;
              if (v >= nv) break;
              const VecF<__half> kx = unpack_half8(raw[u][i], f16);
#pragma unroll
              for (int h = 0; h < ATTENTION_ROWS; ++h) {
                if (h >= heads) break;
                const float4* qv = reinterpret_cast<const float4*>(qs + h * hd + v * V);
#pragma unroll
                for (int e = 0; e < V; e += 4) {
                  const float4 qe = qv[e / 4];
                  dot[h] = fmaf(qe.x, kx.v[e], dot[h]);
                  dot[h] = fmaf(qe.y, kx.v[e + 1], dot[h]);
                  dot[h] = fmaf(qe.z, kx.v[e + 2], dot[h]);
                  dot[h] = fmaf(qe.w, kx.v[e + 3], dot[h]);
                }
              }
            }
            float mine = 0;
#pragma unroll
            for (int h = 0; h < ATTENTION_ROWS; ++h) {
              dot[h] += __shfl_xor_sync(0xffffffffu, dot[h], 1);
              dot[h] += __shfl_xor_sync(0xffffffffu, dot[h], 2);
              if (h == lane_in_key) mine = dot[h];
            }
            const int key = k0 + u * KEYS_PER_ROUND;
            if (key < nb && lane_in_key < heads) scores[lane_in_key * KB + key] = mine;
          }
        }
        consumer_sync();
        // The block's softmax weights, a warp per head, folded into the running max and sum.
        if (env.warp < heads) {
          float* s = scores + env.warp * KB;
          float block_max = -INFINITY;
          for (int k = env.lane; k < nb; k += 32) block_max = fmaxf(block_max, s[k]);
          // Lane 0 alone reads and writes the head's state; the others get it by shuffle.
          const float m_old = __shfl_sync(0xffffffffu, env.lane == 0 ? state[4 * env.warp] : 0.0f, 0);
          const float m_new = fmaxf(m_old, warp_max(block_max));
          float sum = 0;
          for (int k = env.lane; k < nb; k += 32) {
            const float w = expf(s[k] - m_new);
            s[k] = w;
            sum += w;
          }
          sum = warp_sum(sum);
          if (env.lane == 0) {
            const float correction = expf(m_old - m_new);
            state[4 * env.warp] = m_new;
            state[4 * env.warp + 1] = state[4 * env.warp + 1] * correction + sum;
            state[4 * env.warp + 2] = correction;
          }
        }
        consumer_sync();
        // Phase 2: weights x value rows, key group by key group.
        if (key_group < key_groups) {
          float part[ATTENTION_ROWS][V] = {};
#pragma unroll 4
          for (int k = key_group; k < nb; k += key_groups) {
            const VecF<__half> vx = unpack_half8(
                *reinterpret_cast<const uint4*>(v_cache.data + (kb + k) * v_stride + column * 16), f16);
#pragma unroll
            for (int h = 0; h < ATTENTION_ROWS; ++h) {
              if (h >= heads) break;
              const float w = scores[h * KB + k];
#pragma unroll
              for (int e = 0; e < V; ++e) part[h][e] = fmaf(w, vx.v[e], part[h][e]);
            }
          }
#pragma unroll
          for (int h = 0; h < ATTENTION_ROWS; ++h) {
            if (h >= heads) break;
            float4* dst = reinterpret_cast<float4*>(group_sums + (key_group * ATTENTION_ROWS + h) * hd + column * V);
#pragma unroll
            for (int e = 0; e < V; e += 4) {
              dst[e / 4] = make_float4(part[h][e], part[h][e + 1], part[h][e + 2], part[h][e + 3]);
            }
          }
        }
        consumer_sync();
        for (int o = env.tid; o < heads * hd; o += CONSUMER_THREADS) {
          const int h = o / hd, i = o % hd;
          float sum = 0;
          for (int g = 0; g < key_groups; ++g) sum += group_sums[(g * ATTENTION_ROWS + h) * hd + i];
          acc[o] = acc[o] * state[4 * h + 2] + sum;
        }
      }
      // Each thread reads back only the outputs it accumulated.
      for (int o = env.tid; o < heads * hd; o += CONSUMER_THREADS) {
        const int h = o / hd, i = o % hd;
        out.set(r, g0 + h, i, acc[o] / state[4 * h + 1]);
        if (i == 0) out.set_lse(r, g0 + h, state[4 * h] + logf(state[4 * h + 1]));
      }
      consumer_sync();
    }
  }
}

// Whether the vector pass can read both caches: bf16 or f16 rows of at most
// ATTENTION_MAX_ROW_BYTES whole 16-byte vectors at 16-byte aligned addresses.
__device__ inline bool attention_vector_fits(const Ref& k, const Ref& v, int hd) {
  const uintptr_t addresses = reinterpret_cast<uintptr_t>(k.data) | reinterpret_cast<uintptr_t>(v.data) |
                              uintptr_t(k.stride * 2) | uintptr_t(v.stride * 2);
  return k.type == v.type && (k.type == abi::RefType::kBF16 || k.type == abi::RefType::kF16) &&
         hd % 8 == 0 && hd * 2 <= ATTENTION_MAX_ROW_BYTES && addresses % 16 == 0;
}

// The scalar passes as functions of their own: their registers are not the hot kernel's.
__device__ __noinline__ void attention_partial_narrow(TaskEnv& env, const abi::TaskDesc& t) {
  attention_partial_scalar<4>(env, t);
}
__device__ __noinline__ void attention_partial_wide(TaskEnv& env, const abi::TaskDesc& t) {
  attention_partial_scalar<8>(env, t);
}

__device__ inline void run_attention_partial(TaskEnv& env, const abi::TaskDesc& t) {
  static_assert(MAX_HEAD_DIM == 256, "head dims per lane: 4 or 8");
  static_assert(SMEM_SCRATCH_OFFSET % 16 == 0, "the vector pass reads its scratch in vectors");
  const int hd = t.params.attention.head_dim;
  const Ref k = env.ref(t, 1), v = env.ref(t, 2);
  if (attention_vector_fits(k, v, hd)) {
    attention_partial_vector(env, t, k.type == abi::RefType::kF16);
    return;
  }
  if (hd <= 128) {
    attention_partial_narrow(env, t);
  } else {
    attention_partial_wide(env, t);
  }
}

}  // namespace megalith::kernels
