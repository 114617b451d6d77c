// Split-KV decode attention of one KV head's query group over one slice of the visible cache
// rows, for the step's single token: the slice's softmax-normalized output and its
// log-sum-exp (-inf when the slice is empty); with a single split (no lse ref) the attention
// output itself.
//
// The token comes first (rotate_token): its query heads and key get the per-head RMS norm
// (Qwen3) and rotary, a warp per head, all heads at once; the rotated queries stay in shared
// memory, and the key and value rows, rounded as the cache stores them, serve the passes in
// place of cache row `pos`. So the task waits on no write of its own, and appending to the
// caches (single split) or handing key and value to the merge (split 0 of several) is off its
// critical path. Before this fusion a separate task did it: a task's memory latencies, a
// store to the queries and a hop more per layer.
//
// Two passes compute the attention. The vector pass (cache rows of at most 256 bytes at
// 16-byte aligned addresses: head_dim 128 in bf16/f16, the common case) gives each consumer
// warp rounds of 8 keys, every CONSUMER_WARPS-th round of the slice, with an online softmax
// of its own: 4 lanes score a key against up to ATTENTION_ROWS query heads, the lanes holding
// the round's value vector columns weigh them, and the next round's rows are in flight while
// one is computed; the warps' states are merged once, at the end. The scalar pass handles
// every other shape: each consumer warp keeps an online softmax over every
// CONSUMER_WARPS-th key.
#pragma once

#include <math.h>

#include "common/mma.cuh"
#include "common/reduce.cuh"
#include "megakernel/task_env.cuh"

namespace megalith::kernels {

// The writer of a pass's results: the split's partial rows and log-sum-exp, or with a single
// split the attention output (the group's heads side by side).
struct AttentionOut {
  Ref partial, lse;
  int hd;
  __device__ void set(int g, int i, float v) const {
    if (lse.present()) {
      partial.set(g, i, v);
    } else {
      partial.set(0, g * hd + i, v);
    }
  }
  __device__ void set_lse(int g, float v) const {
    if (lse.present()) lse.set(g, 0, v);
  }
  // An empty slice's results for query heads g0 .. g0 + heads - 1: zeros, log-sum-exp -inf.
  __device__ void set_empty(int tid, int g0, int heads) const {
    for (int i = tid; i < heads * hd; i += CONSUMER_THREADS) set(g0 + i / hd, i % hd, 0.0f);
    if (tid < heads) set_lse(g0 + tid, -INFINITY);
  }
};

// The cache rows [begin, end) this split of the pos + 1 visible ones covers.
struct KeySlice {
  int begin, end;
};
__device__ inline KeySlice split_slice(const abi::AttentionParams& p, int pos) {
  const int visible = pos + 1;
  const int chunk = (visible + p.num_splits - 1) / p.num_splits;
  const int begin = min(visible, p.split * chunk);
  return {begin, min(visible, begin + chunk)};
}

// The step's token as the passes read it.
struct Token {
  const float* q;    // the group's rotated query heads, [group][hd], in shared memory
  Ref k_row, v_row;  // its key and value as the caches hold them, one row in shared memory
  int pos;
};

// Where the vector pass finds the cache rows a dedicated attention worker staged in its idle
// weight ring: keys, then values, each row row_bytes long; `capacity` rows fit, `rows` hold
// staged ones.
struct StagedCache {
  const uint8_t *k, *v;
  int capacity, rows, row_bytes;
};
__device__ inline StagedCache staged_cache(const TaskEnv& env, int hd) {
  const int row_bytes = hd * 2;  // bf16 or f16 rows (attention_vector_fits)
  const int capacity = int(env.ring.idle_capacity()) / (2 * row_bytes);
  const uint8_t* base = env.ring.idle_bytes();
  return {base, base + capacity * row_bytes, capacity, env.staged_rows, row_bytes};
}

// Where a vector pass reads the slice's cache row r: the token's own row (tok), a row staged
// in the ring (start_cache_staging), or the cache in global memory (bf16 or f16 rows,
// attention_vector_fits).
struct CacheRows {
  const uint8_t *token_k, *token_v, *k, *v;
  StagedCache staged;
  int pos;
  int64_t k_stride, v_stride;
  __device__ const uint8_t* key(int r) const {
    if (r == pos) return token_k;
    if (r < staged.rows) return staged.k + r * staged.row_bytes;
    return k + r * k_stride;
  }
  __device__ const uint8_t* value(int r) const {
    if (r == pos) return token_v;
    if (r < staged.rows) return staged.v + r * staged.row_bytes;
    return v + r * v_stride;
  }
};
__device__ inline CacheRows cache_rows(const TaskEnv& env, const abi::TaskDesc& t, const Token& tok) {
  const Ref k_cache = env.ref(t, 7), v_cache = env.ref(t, 8);
  StagedCache staged = staged_cache(env, t.params.attention.head_dim);
  staged.rows = min(staged.rows, tok.pos);
  return {tok.k_row.data, tok.v_row.data, k_cache.data, v_cache.data, staged, tok.pos,
          k_cache.stride * 2, v_cache.stride * 2};
}

// Pulls into L2 the cache rows the passes will read (the slice's rows below the token's, not
// staged): the weights streamed since the last step have pushed them out, so each would be an
// HBM miss on attention's chain of latencies, queued behind the rings' copies in flight. Issued
// by the warps the rotation leaves idle (`thread` of `threads`), so the passes, a rotation
// later, find the rows in L2 and nothing on the chain waits for the prefetch (a group of
// CONSUMER_WARPS - 1 or more query heads leaves no warp idle, and nothing is prefetched).
__device__ inline void prefetch_cache_rows(const TaskEnv& env, const abi::TaskDesc& t, int pos,
                                           int thread, int threads) {
  const Ref k_cache = env.ref(t, 7), v_cache = env.ref(t, 8);
  const KeySlice slice = split_slice(t.params.attention, pos);
  const int begin = max(slice.begin, env.staged_rows);
  const int rows = max(0, min(slice.end, pos) - begin);
  const int row_bytes = t.params.attention.head_dim * ref_elem_bytes(k_cache.type);
  const int lines = (row_bytes + L2_LINE - 1) / L2_LINE;
  const int64_t k_stride = k_cache.stride * ref_elem_bytes(k_cache.type);
  const int64_t v_stride = v_cache.stride * ref_elem_bytes(v_cache.type);
  for (int i = thread; i < 2 * rows * lines; i += threads) {
    const int line = i % lines, row = begin + (i / lines) % rows;
    const bool key = i < rows * lines;
    prefetch_l2((key ? k_cache.data : v_cache.data) + row * (key ? k_stride : v_stride) + line * L2_LINE);
  }
}

// Pair i's cosine and sine at position pos: the angle in float and its cosine and sine in
// double, as the CPU reference computes them, so the two agree to the last bit of the
// rotation; one sincos() reduces the angle once for both (the same bits as cos() and sin(),
// and measured faster than the two calls, docs/performance.md).
__device__ __forceinline__ void rotation_angle(const Ref& inv_freq, int i, int32_t pos, float& c,
                                               float& s) {
  const float angle = float(pos) * inv_freq.float_of(inv_freq.get_bits(0, i));
  double sine, cosine;
  sincos(double(angle), &sine, &cosine);
  c = float(cosine);
  s = float(sine);
}

// The rotation's inputs that do not depend on the step's token (layout.h,
// attention_table_floats): the heads' norm weights as floats and each pair's cosine and sine.
struct RotationTable {
  float *q_gamma, *k_gamma, *cos, *sin;
  int32_t* pos;  // the position pair i's cosine and sine are for
};
__device__ inline RotationTable rotation_table(float* scratch, int hd) {
  const uint32_t row = align_up(uint32_t(hd), 4), pairs = align_up(uint32_t(hd / 2), 4);
  float* angles = scratch + 2 * row;
  return {scratch, scratch + row, angles, angles + pairs,
          reinterpret_cast<int32_t*>(angles + 2 * pairs)};
}

// Fills the rotation table before the task's events fire (prepare_task), so that the rotation
// after them loads only the token's heads: the norm weights and frequencies, read once a layer,
// come from HBM (a latency of the rotation's chain, measured 1.9-2.3 us with the heads', the
// thirty-second session), and the double-precision sincos is done. The warps past the first
// fill it (thread 0 waits on the events); the barrier after the wait orders their writes
// before the rotation's reads. The position is read now: at layer 0 it may still be the last
// step's (this step's embedding has not run), so each pair keeps the position it is for, and
// the rotation computes again a pair whose position is not the step's.
__device__ inline void start_rotation_table(TaskEnv& env, const abi::TaskDesc& t) {
  if (env.warp == 0) return;
  const Ref q_norm = env.ref(t, 3), k_norm = env.ref(t, 4), positions = env.ref(t, 5);
  const Ref inv_freq = env.ref(t, 6);
  const int hd = t.params.attention.head_dim, half = hd / 2;
  const RotationTable table = rotation_table(env.scratch, hd);
  const int32_t pos = *reinterpret_cast<const volatile int32_t*>(positions.data);
  for (int i = env.tid - 32; i < hd; i += CONSUMER_THREADS - 32) {
    // Every load in flight before the first store (which the compiler cannot tell apart from
    // a later load's address).
    const uint32_t qb = q_norm.present() ? q_norm.get_bits(0, i) : 0;
    const uint32_t kb = k_norm.present() ? k_norm.get_bits(0, i) : 0;
    if (i < half) {
      float c, s;
      rotation_angle(inv_freq, i, pos, c, s);
      table.cos[i] = c;
      table.sin[i] = s;
      table.pos[i] = pos;
    }
    // Read only where the head has a norm (rotate_token).
    if (q_norm.present()) table.q_gamma[i] = q_norm.float_of(qb);
    if (k_norm.present()) table.k_gamma[i] = k_norm.float_of(kb);
  }
}

// Normalizes and rotates the token's query heads and key, a warp per head (heads
// 0..group-1 the queries, head `group` the key), all heads at once: this is a chain of memory
// latencies, so it runs them side by side. The norm weights, cosines and sines come from the
// rotation table (start_rotation_table). Appends key and value (single split) or hands them
// to the merge (new_kv).
__device__ inline Token rotate_token(TaskEnv& env, const abi::TaskDesc& t, float* scratch) {
  const Ref q = env.ref(t, 0), k = env.ref(t, 1), v = env.ref(t, 2), q_norm = env.ref(t, 3);
  const Ref k_norm = env.ref(t, 4), positions = env.ref(t, 5), inv_freq = env.ref(t, 6);
  const Ref k_cache = env.ref(t, 7), v_cache = env.ref(t, 8), new_kv = env.ref(t, 11);
  const bool append = !env.ref(t, 10).present();
  const abi::AttentionParams& p = t.params.attention;
  const int hd = p.head_dim, group = p.group, half = hd / 2;
  const double eps = p.eps, inv_hd = 1.0 / double(hd);
  const RotationTable table = rotation_table(scratch, hd);
  float* qs = scratch + attention_table_floats(uint32_t(hd));
  float* key = qs + align_up(uint32_t(group * hd), 4);
  const uint32_t row_floats = align_up(uint32_t(hd), 4);
  const Ref k_row{reinterpret_cast<uint8_t*>(key + row_floats), k_cache.type, 1, hd, hd};
  const Ref v_row{reinterpret_cast<uint8_t*>(key + 2 * row_floats), v_cache.type, 1, hd, hd};
  const int32_t pos = positions.get_int(0, 0);
  // The value row is loaded with the heads, one element a thread and a second one past
  // CONSUMER_THREADS (head dims up to MAX_HEAD_DIM).
  static_assert(MAX_HEAD_DIM <= 2 * CONSUMER_THREADS, "two value elements a thread");
  const int value_high = env.tid + CONSUMER_THREADS;
  const uint32_t value_bits = env.tid < hd ? v.get_bits(0, env.tid) : 0;
  const uint32_t value_high_bits = value_high < hd ? v.get_bits(0, value_high) : 0;
  const int idle_warp = env.warp - (group + 1);  // warps past the heads rotate nothing
  if (idle_warp >= 0) {
    prefetch_cache_rows(env, t, pos, idle_warp * 32 + env.lane, (CONSUMER_WARPS - group - 1) * 32);
  }
  for (int h = env.warp; h <= group; h += CONSUMER_WARPS) {
    const bool is_key = h == group;
    // By value: references to one of two local Refs would put both in local memory.
    const Ref src = is_key ? k : q;
    const bool norm = (is_key ? k_norm : q_norm).present();
    const float* gamma = is_key ? table.k_gamma : table.q_gamma;
    const int base = is_key ? 0 : h * hd;
    float* head = is_key ? key : qs + h * hd;
    // Every element of the lane in flight before any is used: raw bits into registers first
    // (get_bits), converted once all are issued, and no store to shared memory between them
    // (the compiler cannot tell that it does not alias a later load).
    constexpr int ELEMS = MAX_HEAD_DIM / 32;  // head elements per lane
    uint32_t xb[ELEMS];
#pragma unroll
    for (int j = 0; j < ELEMS; ++j) {
      const int i = env.lane + 32 * j;
      xb[j] = i < hd ? src.get_bits(0, base + i) : 0;
    }
    double sum_sq = 0;
#pragma unroll
    for (int j = 0; j < ELEMS; ++j) {
      const int i = env.lane + 32 * j;
      const float x = src.float_of(xb[j]);
      if (i < hd) head[i] = x;
      sum_sq += double(x) * double(x);
    }
    const float inv_rms = norm ? rms_scale(warp_sum(sum_sq), inv_hd, eps) : 1.0f;
    __syncwarp();
    for (int i = env.lane; i < half; i += 32) {
      float x1 = head[i], x2 = head[i + half];
      if (norm) {
        x1 = gamma[i] * (x1 * inv_rms);
        x2 = gamma[i + half] * (x2 * inv_rms);
      }
      float c, s;
      if (table.pos[i] == pos) {
        c = table.cos[i];
        s = table.sin[i];
      } else {
        rotation_angle(inv_freq, i, pos, c, s);
      }
      // Separately rounded products, as the CPU computes them (no fused multiply-add).
      const float o1 = __fmul_rn(x1, c) - __fmul_rn(x2, s);
      const float o2 = __fmul_rn(x2, c) + __fmul_rn(x1, s);
      // Each lane rewrites only the pair it read.
      head[i] = o1;
      head[i + half] = o2;
      if (is_key) {
        k_row.set(0, i, o1);
        k_row.set(0, i + half, o2);
        if (append) {
          k_cache.set(pos, i, o1);
          k_cache.set(pos, i + half, o2);
        } else if (new_kv.present()) {
          new_kv.set(0, i, o1);
          new_kv.set(0, i + half, o2);
        }
      }
    }
  }
  for (int i = env.tid; i < hd; i += CONSUMER_THREADS) {
    const float value = v.float_of(i == env.tid ? value_bits : value_high_bits);
    v_row.set(0, i, value);
    if (append) {
      v_cache.set(pos, i, value);
    } else if (new_kv.present()) {
      new_kv.set(0, hd + i, value);
    }
  }
  consumer_sync();
  return {qs, k_row, v_row, pos};
}

// DIMS_PER_LANE: head dimensions per lane, head_dim / 32 rounded up to 4 or 8; the state of a
// pass lives in registers, and the common head_dim 128 needs half of what 256 does.
template <int DIMS_PER_LANE>
__device__ void attention_partial_scalar(TaskEnv& env, const abi::TaskDesc& t, const Token& tok,
                                         float* scratch) {
  const Ref k_cache = env.ref(t, 7), v_cache = env.ref(t, 8);
  const abi::AttentionParams& p = t.params.attention;
  const int hd = p.head_dim, group = p.group;
  const AttentionOut out{env.ref(t, 9), env.ref(t, 10), hd};
  float* states = scratch;  // [warp][head]: max, sum, output row
  auto state_of = [&](int warp, int h) { return states + (warp * ATTENTION_ROWS + h) * (hd + 2); };
  const KeySlice slice = split_slice(p, tok.pos);
  const int begin = slice.begin, end = slice.end;
  for (int g0 = 0; g0 < group; g0 += ATTENTION_ROWS) {
    const int heads = min(ATTENTION_ROWS, group - g0);
    if (begin == end) {
      out.set_empty(env.tid, g0, heads);
      continue;
    }
    const float* qs = tok.q + g0 * hd;
    float m[ATTENTION_ROWS], l[ATTENTION_ROWS], acc[ATTENTION_ROWS][DIMS_PER_LANE];
#pragma unroll
    for (int h = 0; h < ATTENTION_ROWS; ++h) {
      m[h] = -INFINITY;
      l[h] = 0;
#pragma unroll
      for (int j = 0; j < DIMS_PER_LANE; ++j) acc[h][j] = 0;
    }
    // The key and value rows' elements of this lane (row `pos` the token's own); the next
    // row's loads are in flight while this one is used, so a warp waits one memory latency,
    // not one per key.
    const auto load_kv = [&](int s, float (&kv)[DIMS_PER_LANE], float (&vv)[DIMS_PER_LANE]) {
      const bool own = s == tok.pos;
#pragma unroll
      for (int j = 0; j < DIMS_PER_LANE; ++j) {
        const int i = env.lane + 32 * j;
        const bool used = i < hd && s < end;
        kv[j] = used ? (own ? tok.k_row.get(0, i) : k_cache.get(s, i)) : 0.0f;
        vv[j] = used ? (own ? tok.v_row.get(0, i) : v_cache.get(s, i)) : 0.0f;
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
      out.set(g0 + h, i, sum / total);
      if (i == 0) out.set_lse(g0 + h, max_all + logf(total));
    }
    consumer_sync();
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

// The vector pass for query heads g0 .. g0 + heads - 1 of the group, R at a time (R is 2 for
// groups of one or two heads, so that Qwen3-0.6B's pairs pay for no zero rows, else
// ATTENTION_ROWS; rows past `heads` hold zero queries, so no branch separates the heads' FMA
// chains). Each consumer warp takes rounds of ROUND_KEYS keys, every CONSUMER_WARPS-th round
// of the slice, and keeps an online softmax of its own: a round's keys are scored by LANES
// lanes each, its value rows are weighted by the lanes that hold their vector columns, and the
// next round's key and value rows are in flight while it computes one. No barrier separates
// the keys (the block pass before it had four a block: scores, softmax, values, their sum);
// the warps' states are merged once, at the end.
// The end of a vector pass, once every consumer warp has written its online softmax's state
// and passed a barrier: per head h, warp w's max and sum at max_sum[2 (w R + h)] and the next
// float, its weighted values (not yet normalized) at parts[((s CONSUMER_WARPS + w) R + h) hd]
// for each slot s of `slots` (lanes holding a share of the warp's values). A warp per head
// weighs the warps (a lane each: warps that took no round hold max -inf and weigh nothing;
// warp 0 took the slice's first round, so the maximum is finite); then every output sums its
// slots' and warps' values, scaled, 16 of them loaded at once.
template <int R>
__device__ inline void merge_warp_states(const TaskEnv& env, const AttentionOut& out, const float* parts,
                                         const float* max_sum, float* warp_scale, int slots, int g0, int heads,
                                         int hd) {
  if (env.warp < heads) {
    const int h = env.warp, w = env.lane;
    const bool has = w < CONSUMER_WARPS;
    const float mw = has ? max_sum[2 * (w * R + h)] : -INFINITY;
    const float M = warp_max(mw);
    const float scale = expf(mw - M);
    const float total = warp_sum(has ? max_sum[2 * (w * R + h) + 1] * scale : 0.0f);
    if (has) warp_scale[w * R + h] = scale / total;
    if (env.lane == 0) out.set_lse(g0 + h, M + logf(total));
  }
  consumer_sync();
  const int count = slots * CONSUMER_WARPS;
  for (int o = env.tid; o < heads * hd; o += CONSUMER_THREADS) {
    const int h = o / hd, i = o % hd;
    float sum = 0;
    for (int c0 = 0; c0 < count; c0 += 16) {
      float part[16];
#pragma unroll
      for (int c = 0; c < 16; ++c) {
        const int sw = c0 + c;  // slot sw / CONSUMER_WARPS, warp sw % CONSUMER_WARPS
        part[c] = sw < count ? parts[(sw * R + h) * hd + i] * warp_scale[(sw % CONSUMER_WARPS) * R + h] : 0.0f;
      }
#pragma unroll
      for (int c = 0; c < 16; ++c) sum += part[c];
    }
    out.set(g0 + h, i, sum);
  }
  consumer_sync();
}

template <int R>
__device__ void attention_vector_heads(TaskEnv& env, const abi::TaskDesc& t, const Token& tok,
                                       float* scratch, bool f16, int g0, int heads) {
  constexpr int V = 8;                       // bf16 or f16 elements per 16-byte vector
  constexpr int LANES = ATTENTION_KEY_LANES;  // lanes scoring one key
  constexpr int ROUND_KEYS = 32 / LANES;     // keys a warp takes a round
  constexpr int VPL = ATTENTION_MAX_ROW_BYTES / 16 / LANES;  // a key row's vectors per lane
  // A row has at most 16 vectors, so a lane loads at most every second key's value vector.
  constexpr int VALUE_LOADS = ROUND_KEYS / 2;
  static_assert(ATTENTION_MAX_ROW_BYTES / 16 <= 16, "two value rows a warp load at least");
  const abi::AttentionParams& p = t.params.attention;
  const int hd = p.head_dim, nv = hd / V;
  const AttentionOut out{env.ref(t, 9), env.ref(t, 10), hd};
  // The lanes of a round: key `key_lane` scored with vectors lane_in_key + LANES * i of its
  // row; value vector column `column` of the round's keys slot, slot + slots, ...
  const int lane_in_key = env.lane % LANES, key_lane = env.lane / LANES;
  const int slots = 32 / nv, column = env.lane % nv, slot = env.lane / nv;
  const bool value_lane = slot < slots;
  float* qs = scratch;                                 // [R][hd], scaled
  float* parts = qs + R * hd;                          // [slot][warp][R][hd] weighted values
  float* warp_max_sum = parts + slots * CONSUMER_WARPS * R * hd;  // [warp][R]: max, sum
  float* warp_scale = warp_max_sum + 2 * CONSUMER_WARPS * R;      // [warp][R]

  const KeySlice slice = split_slice(p, tok.pos);
  const int begin = slice.begin, end = slice.end;
  if (begin == end) {
    out.set_empty(env.tid, g0, heads);
    return;
  }
  const CacheRows rows = cache_rows(env, t, tok);
  for (int i = env.tid; i < R * hd; i += CONSUMER_THREADS) {
    qs[i] = i < heads * hd ? tok.q[g0 * hd + i] * p.scale : 0.0f;
  }
  consumer_sync();

  // Round `base`'s key or value vectors of this lane, zeros past the slice (so no load is
  // issued for them).
  const auto load_keys = [&](int base, uint4 (&k)[VPL]) {
    const int key = base + key_lane;
    const uint8_t* k_row = rows.key(key);
#pragma unroll
    for (int i = 0; i < VPL; ++i) {
      const int v = lane_in_key + LANES * i;
      k[i] = key < end && v < nv ? *reinterpret_cast<const uint4*>(k_row + v * 16) : make_uint4(0, 0, 0, 0);
    }
  };
  const auto load_values = [&](int base, uint4 (&vals)[VALUE_LOADS]) {
#pragma unroll
    for (int j = 0; j < VALUE_LOADS; ++j) {
      const int in_round = j * slots + slot, r = base + in_round;
      vals[j] = value_lane && in_round < ROUND_KEYS && r < end
                    ? *reinterpret_cast<const uint4*>(rows.value(r) + column * 16)
                    : make_uint4(0, 0, 0, 0);
    }
  };

  float m[R], l[R], acc[R][V];
#pragma unroll
  for (int h = 0; h < R; ++h) {
    m[h] = -INFINITY;
    l[h] = 0;
#pragma unroll
    for (int e = 0; e < V; ++e) acc[h][e] = 0;
  }
  // A round's scores, folded into the warp's running max and sum: its keys' weights and the
  // running outputs' correction.
  const auto score_round = [&](int base, const uint4 (&keys)[VPL], float (&w)[R], float (&correction)[R]) {
    // Scores: two chains a head (a vector's first and second halves: a branch ends each
    // vector, so the chains of one vector are what can interleave), summed over the key's
    // LANES lanes.
    float dot[R][2] = {};
#pragma unroll
    for (int i = 0; i < VPL; ++i) {
      const int v = lane_in_key + LANES * i;
      if (v >= nv) break;
      const VecF<__half> kx = unpack_half8(keys[i], f16);
#pragma unroll
      for (int h = 0; h < R; ++h) {
        const float4* qv = reinterpret_cast<const float4*>(qs + h * hd + v * V);
#pragma unroll
        for (int e = 0; e < V; e += 4) {
          const float4 qe = qv[e / 4];
          float& d = dot[h][e / 4];
          d = fmaf(qe.x, kx.v[e], d);
          d = fmaf(qe.y, kx.v[e + 1], d);
          d = fmaf(qe.z, kx.v[e + 2], d);
          d = fmaf(qe.w, kx.v[e + 3], d);
        }
      }
    }
    const bool valid = base + key_lane < end;
#pragma unroll
    for (int h = 0; h < R; ++h) {
      float s = dot[h][0] + dot[h][1];
#pragma unroll
      for (int o = 1; o < LANES; o <<= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
      s = valid ? s : -INFINITY;
      float round_max = s;
#pragma unroll
      for (int o = LANES; o < 32; o <<= 1) round_max = fmaxf(round_max, __shfl_xor_sync(0xffffffffu, round_max, o));
      // The round's first key is in the slice, so m_new is finite.
      const float m_new = fmaxf(m[h], round_max);
      correction[h] = expf(m[h] - m_new);
      w[h] = expf(s - m_new);
      // A key's weight counted once, by its first lane; the warp's lanes are added at the end.
      l[h] = l[h] * correction[h] + (lane_in_key == 0 ? w[h] : 0.0f);
      m[h] = m_new;
    }
  };
  // The round's value rows weighted into the running outputs.
  const auto weigh_values = [&](const uint4 (&vals)[VALUE_LOADS], const float (&w)[R], const float (&correction)[R]) {
#pragma unroll
    for (int h = 0; h < R; ++h) {
#pragma unroll
      for (int e = 0; e < V; ++e) acc[h][e] *= correction[h];
    }
#pragma unroll
    for (int j = 0; j < VALUE_LOADS; ++j) {
      if (j * slots >= ROUND_KEYS) break;  // the same for the whole warp
      // Every lane takes part in the shuffles; lanes without a value vector hold zeros.
      const int weight_lane = ((j * slots + slot) % ROUND_KEYS) * LANES;
      const VecF<__half> vx = unpack_half8(vals[j], f16);
#pragma unroll
      for (int h = 0; h < R; ++h) {
        const float wj = __shfl_sync(0xffffffffu, w[h], weight_lane);
#pragma unroll
        for (int e = 0; e < V; ++e) acc[h][e] = fmaf(wj, vx.v[e], acc[h][e]);
      }
    }
  };

  // A round's key rows are loaded once the round before has scored its own, its value rows
  // once the round before has weighed its own: each has half a round to arrive, and a lane
  // holds one round's rows (a round ahead for both spilled registers in the general kernel,
  // and with the other changes of exp/combo-warps in the bf16 decode kernel too).
  constexpr int STRIDE = CONSUMER_WARPS * ROUND_KEYS;
  uint4 keys[VPL], vals[VALUE_LOADS];
  int base = begin + env.warp * ROUND_KEYS;
  load_keys(base, keys);
  load_values(base, vals);
  for (; base < end; base += STRIDE) {
    float w[R], correction[R];
    score_round(base, keys, w, correction);
    load_keys(base + STRIDE, keys);
    weigh_values(vals, w, correction);
    load_values(base + STRIDE, vals);
  }

  // The warp's state: its max (the same in every lane), sum and weighted values per slot.
#pragma unroll
  for (int h = 0; h < R; ++h) {
    const float sum = warp_sum(l[h]);
    if (env.lane == 0) {
      warp_max_sum[2 * (env.warp * R + h)] = m[h];
      warp_max_sum[2 * (env.warp * R + h) + 1] = sum;
    }
    if (value_lane) {
      float4* dst = reinterpret_cast<float4*>(parts + ((slot * CONSUMER_WARPS + env.warp) * R + h) * hd + column * V);
#pragma unroll
      for (int e = 0; e < V; e += 4) dst[e / 4] = make_float4(acc[h][e], acc[h][e + 1], acc[h][e + 2], acc[h][e + 3]);
    }
  }
  consumer_sync();
  merge_warp_states<R>(env, out, parts, warp_max_sum, warp_scale, slots, g0, heads, hd);
}

// a[i] for a lane-dependent i, by selects: indexing a register array with it would put the
// array in local memory.
template <int N>
__device__ __forceinline__ float select_of(const float (&a)[N], int i) {
  float v = a[0];
#pragma unroll
  for (int j = 1; j < N; ++j) v = i == j ? a[j] : v;
  return v;
}

// Word k (0-3, known at compile time) of a 16-byte vector.
__device__ __forceinline__ uint32_t vector_word(const uint4& v, int k) {
  return k == 0 ? v.x : k == 1 ? v.y : k == 2 ? v.z : v.w;
}

// The bf16 decode kernel's pass: attention_vector_heads' rounds, each warp its own online
// softmax, with the products on the tensor cores (mma.m16n8k16: bf16 operands, f32 sums),
// rounds of 16 keys. Query heads g0 .. g0 + heads - 1, up to ATTENTION_ROWS at a time.
// - Scores, S = Q K^T (as exp/attention-mma): A holds the heads' scaled query rows split into
//   three bf16 parts (hi in rows 0-3, mid in rows 4-7, lo in rows 8-11: their sum is the f32
//   query to about 2^-24), from shared memory; B one tile of 8 keys' rows, the lane's key g of
//   the tile. A lane's k slots 2t, 2t+1, 2t+8, 2t+9 of k-step 2j+s stand for dims
//   32j + 8t + 4s + 0..3 in A and B alike, so a lane loads its key's row 16 bytes at a time.
//   Lanes 0-15 (rows 0-3) end up with head g's scores of keys 2t, 2t+1 of each tile.
// - Outputs, O^T += V^T P^T: for each tile of 16 dims, A holds them for the round's 16 keys;
//   a lane loads 16 bytes (dims 64c + 8g .. + 7) of each of its 4 keys' rows for each chunk c
//   of 64 dims, and word k of them is rows g (dim 64c + 8g + 2k) and g+8 (the next dim) of
//   tile 4c + k, the halves swapped into place. B holds the weights split into three bf16
//   parts, fetched by shuffle from the lanes that computed them: hi in columns 0-3 and mid in
//   4-7 of one product, lo in columns 4-7 of a second into the same accumulators (columns 0-3
//   zero): 8 + 8 + 8 bits, a float32 weight exactly. Two parts (to about 2^-17) left the
//   outputs 6x less exact than a float32 pass in emulation (scripts/dev/
//   attention_mma_emulation.py), and compare_hf.py failed on a group-4 fixture
//   (docs/performance.md). The hi and mid + lo columns are added at the end.
// Sums in the tensor cores' order: the CPU reference's to its f32 tolerance, not to the bit.
__device__ inline void attention_mma_heads(TaskEnv& env, const abi::TaskDesc& t, const Token& tok,
                                           float* scratch, int g0, int heads) {
  constexpr int R = ATTENTION_ROWS;
  constexpr int MAX_PAIRS = ATTENTION_MAX_ROW_BYTES / 64;  // pairs of k-steps: 32 dims each
  constexpr int MAX_CHUNKS = ATTENTION_MAX_ROW_BYTES / 128;  // value chunks: 64 dims each
  constexpr int MAX_TILES = 4 * MAX_CHUNKS;                  // output tiles: 16 dims each
  constexpr int ROUND_KEYS = 16;                           // two tiles of 8 keys
  static_assert(R == 4, "query heads in A's rows 0-3, 4-7, 8-11; B's columns 0-3, 4-7");
  static_assert(MAX_PAIRS <= CONSUMER_WARPS, "a warp per pair of k-steps of the query's fragments");
  static_assert(2 * MAX_PAIRS * 32 * 4 + CONSUMER_WARPS * R * (ATTENTION_MAX_ROW_BYTES / 2) +
                        3 * CONSUMER_WARPS * R <=
                    attention_vector_scratch_floats(ATTENTION_MAX_ROW_BYTES / 2),
                "the pass's scratch fits the vector pass's");
  const abi::AttentionParams& p = t.params.attention;
  // head_dim is a multiple of 8: the k-steps' dims past it are zeros in A and B alike, and
  // the output tiles' dims past it are neither loaded nor written.
  const int hd = p.head_dim, pairs = (hd + 31) / 32, chunks = (hd + 63) / 64, tiles = 4 * chunks;
  const AttentionOut out{env.ref(t, 9), env.ref(t, 10), hd};
  const int g = env.lane / 4, tq = env.lane % 4;  // the lane's fragment row and column pair
  auto* q_frags = reinterpret_cast<uint4*>(scratch);    // [k-step][lane]
  float* parts = scratch + 2 * MAX_PAIRS * 32 * 4;      // [warp][R][hd] weighted values
  float* warp_max_sum = parts + CONSUMER_WARPS * R * hd;          // [warp][R]: max, sum
  float* warp_scale = warp_max_sum + 2 * CONSUMER_WARPS * R;      // [warp][R]

  const KeySlice slice = split_slice(p, tok.pos);
  const int begin = slice.begin, end = slice.end;
  if (begin == end) {
    out.set_empty(env.tid, g0, heads);
    return;
  }
  const CacheRows rows = cache_rows(env, t, tok);
  // Round `base`'s rows of this lane, zeros past the slice and the head's dims.
  const auto load_keys = [&](int base, uint4 (&keys)[2][MAX_PAIRS]) {
#pragma unroll
    for (int u = 0; u < 2; ++u) {
      const int key = base + 8 * u + g;
      const uint8_t* row = rows.key(key);
#pragma unroll
      for (int j = 0; j < MAX_PAIRS; ++j) {
        keys[u][j] = j < pairs && key < end && 32 * j + 8 * tq < hd
                         ? *reinterpret_cast<const uint4*>(row + 64 * j + 16 * tq)
                         : make_uint4(0, 0, 0, 0);
      }
    }
  };
  // 16 bytes (dims 64c + 8g .. + 7) of each chunk c of the lane's keys 2t + (i & 1) + 8 (i >> 1).
  const auto load_values = [&](int base, uint4 (&vals)[4][MAX_CHUNKS]) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int key = base + 2 * tq + (i & 1) + 8 * (i >> 1);
      const uint8_t* row = rows.value(key);
#pragma unroll
      for (int c = 0; c < MAX_CHUNKS; ++c) {
        vals[i][c] = c < chunks && key < end && 64 * c + 8 * g < hd
                         ? *reinterpret_cast<const uint4*>(row + 128 * c + 16 * g)
                         : make_uint4(0, 0, 0, 0);
      }
    }
  };

  // The first round's rows are on their way while the query's fragments are made.
  constexpr int STRIDE = CONSUMER_WARPS * ROUND_KEYS;
  uint4 keys[2][MAX_PAIRS], vals[4][MAX_CHUNKS];
  int base = begin + env.warp * ROUND_KEYS;
  // A warp past the slice loads nothing (the same for the whole warp): its loads would all be
  // predicated off, but their address arithmetic (about 120 instructions a lane) delayed the
  // fragments' barrier.
  if (base < end) {
    load_keys(base, keys);
    load_values(base, vals);
  }
  // The scaled query's fragments, the same for every round: warp j those of k-steps 2j and
  // 2j + 1. Row g holds the hi (g < 4) or mid part of head g % 4, row g + 8 the lo part.
  if (env.warp < pairs) {
    const int j = env.warp, qh = g % 4;
    float q[8] = {};
    if (qh < heads && 32 * j + 8 * tq < hd) {
      const float4* src = reinterpret_cast<const float4*>(tok.q + (g0 + qh) * hd + 32 * j + 8 * tq);
      const float4 q0 = src[0], q1 = src[1];
      q[0] = q0.x * p.scale, q[1] = q0.y * p.scale, q[2] = q0.z * p.scale, q[3] = q0.w * p.scale;
      q[4] = q1.x * p.scale, q[5] = q1.y * p.scale, q[6] = q1.z * p.scale, q[7] = q1.w * p.scale;
    }
    float upper[8], lower[8];  // rows g and g + 8
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      const Bf16Parts part = split_bf16x3(q[e]);
      upper[e] = g < 4 ? part.hi : part.mid;
      lower[e] = g < 4 ? part.lo : 0.0f;
    }
#pragma unroll
    for (int s = 0; s < 2; ++s) {
      q_frags[(2 * j + s) * 32 + env.lane] =
          make_uint4(pack_bf16x2(upper[4 * s], upper[4 * s + 1]), pack_bf16x2(lower[4 * s], lower[4 * s + 1]),
                     pack_bf16x2(upper[4 * s + 2], upper[4 * s + 3]),
                     pack_bf16x2(lower[4 * s + 2], lower[4 * s + 3]));
    }
  }
  consumer_sync();

  float m[R], l = 0, acc[MAX_TILES][4];  // m: every lane the same; l: head g's, lanes 0-15
#pragma unroll
  for (int h = 0; h < R; ++h) m[h] = -INFINITY;
#pragma unroll
  for (int i = 0; i < MAX_TILES; ++i) {
#pragma unroll
    for (int e = 0; e < 4; ++e) acc[i][e] = 0;
  }
  // A round's scores and weights: w[u][e] is head g's weight of key 8u + 2t + e (lanes 0-15;
  // zero in the others); correction[h] scales head h's running outputs.
  const auto score_round = [&](int base, const uint4 (&keys)[2][MAX_PAIRS], float (&w)[2][2],
                               float (&correction)[R]) {
    float d[2][4] = {};
#pragma unroll
    for (int j = 0; j < MAX_PAIRS; ++j) {
      if (j >= pairs) break;  // the same for the whole warp
      const uint4 f0 = q_frags[2 * j * 32 + env.lane], f1 = q_frags[(2 * j + 1) * 32 + env.lane];
#pragma unroll
      for (int u = 0; u < 2; ++u) {
        mma_bf16_16816(d[u], {f0.x, f0.y, f0.z, f0.w}, keys[u][j].x, keys[u][j].y);
        mma_bf16_16816(d[u], {f1.x, f1.y, f1.z, f1.w}, keys[u][j].z, keys[u][j].w);
      }
    }
    // Head g's score: hi and lo here (rows g, g + 8), mid 16 lanes up.
    float round_max = -INFINITY;
#pragma unroll
    for (int u = 0; u < 2; ++u) {
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const float mid = __shfl_down_sync(0xffffffffu, d[u][e], 16);
        const bool valid = g < 4 && base + 8 * u + 2 * tq + e < end;
        w[u][e] = valid ? d[u][e] + d[u][e + 2] + mid : -INFINITY;
        round_max = fmaxf(round_max, w[u][e]);
      }
    }
    round_max = fmaxf(round_max, __shfl_xor_sync(0xffffffffu, round_max, 1));
    round_max = fmaxf(round_max, __shfl_xor_sync(0xffffffffu, round_max, 2));
    float m_new[R];
#pragma unroll
    for (int h = 0; h < R; ++h) {
      // Row h's lanes hold head h's round maximum; the round's first key is in the slice.
      m_new[h] = fmaxf(m[h], __shfl_sync(0xffffffffu, round_max, 4 * h));
      correction[h] = expf(m[h] - m_new[h]);
      m[h] = m_new[h];
    }
    const float mine = select_of(m_new, g % 4);
    float sum = 0;
#pragma unroll
    for (int u = 0; u < 2; ++u) {
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        w[u][e] = expf(w[u][e] - mine);
        sum += w[u][e];
      }
    }
    l = l * select_of(correction, g % 4) + sum;
  };
  // The round's values weighted into the running outputs.
  const auto weigh_values = [&](const uint4 (&vals)[4][MAX_CHUNKS], const float (&w)[2][2],
                                const float (&correction)[R]) {
    // B: column g is head g % 4's hi (g < 4) or mid part, and in the second product its lo
    // part (g >= 4; zero below), rows 2t, 2t+1 (keys 2t, 2t+1 of tile 0) and 2t+8, 2t+9 (tile
    // 1): the weights lane 4 (g % 4) + t computed.
    const int from = 4 * (g % 4) + tq;
    float x[2][2], x_lo[2][2];
#pragma unroll
    for (int u = 0; u < 2; ++u) {
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const Bf16Parts part = split_bf16x3(__shfl_sync(0xffffffffu, w[u][e], from));
        x[u][e] = g < 4 ? part.hi : part.mid;
        x_lo[u][e] = g < 4 ? 0.0f : part.lo;
      }
    }
    const uint32_t b0 = pack_bf16x2(x[0][0], x[0][1]), b1 = pack_bf16x2(x[1][0], x[1][1]);
    const uint32_t b0_lo = pack_bf16x2(x_lo[0][0], x_lo[0][1]), b1_lo = pack_bf16x2(x_lo[1][0], x_lo[1][1]);
    // The outputs' columns 2t, 2t + 1: heads (2t) % 4 and (2t + 1) % 4.
    const float c0 = select_of(correction, (2 * tq) % 4), c1 = select_of(correction, (2 * tq + 1) % 4);
#pragma unroll
    for (int i = 0; i < MAX_TILES; ++i) {
      if (i >= tiles) break;  // the same for the whole warp
      acc[i][0] *= c0;
      acc[i][1] *= c1;
      acc[i][2] *= c0;
      acc[i][3] *= c1;
      uint32_t word[4];  // word i % 4 of chunk i / 4 of the lane's four keys
#pragma unroll
      for (int k = 0; k < 4; ++k) word[k] = vector_word(vals[k][i / 4], i % 4);
      const uint32_t a[4] = {permute_halves<0x5410>(word[0], word[1]), permute_halves<0x7632>(word[0], word[1]),
                             permute_halves<0x5410>(word[2], word[3]), permute_halves<0x7632>(word[2], word[3])};
      mma_bf16_16816(acc[i], a, b0, b1);
      mma_bf16_16816(acc[i], a, b0_lo, b1_lo);
    }
  };

  // As wl: a round's key rows loaded once the round before has scored its own, its value rows
  // once it has weighed its own. None past the slice: at short contexts each warp has one
  // round, and the next one's address arithmetic sat between its scores and its weights.
  for (; base < end; base += STRIDE) {
    float w[2][2], correction[R];
    const bool more = base + STRIDE < end;  // the same for the whole warp
    score_round(base, keys, w, correction);
    if (more) load_keys(base + STRIDE, keys);
    weigh_values(vals, w, correction);
    if (more) load_values(base + STRIDE, vals);
  }

  // The warp's state: per head its max, sum (lanes 4h .. 4h + 3 hold head h's parts) and
  // outputs (columns 2t, 2t + 1 of lanes t < 2, the mid and lo parts added from lanes t + 2).
  l += __shfl_xor_sync(0xffffffffu, l, 1);
  l += __shfl_xor_sync(0xffffffffu, l, 2);
  if (g < R && tq == 0) {
    warp_max_sum[2 * (env.warp * R + g)] = select_of(m, g);
    warp_max_sum[2 * (env.warp * R + g) + 1] = l;
  }
#pragma unroll
  for (int i = 0; i < MAX_TILES; ++i) {
    if (i >= tiles) break;  // the same for the whole warp: no shuffles of the zero tiles
#pragma unroll
    for (int e = 0; e < 4; ++e) acc[i][e] += __shfl_xor_sync(0xffffffffu, acc[i][e], 2);
    const int dim = 64 * (i / 4) + 8 * g + 2 * (i % 4);  // row g's; row g + 8's is the next
    if (tq < 2 && 64 * (i / 4) + 8 * g < hd) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        parts[(env.warp * R + 2 * tq + (e & 1)) * hd + dim + (e >> 1)] = acc[i][e];
      }
    }
  }
  consumer_sync();
  merge_warp_states<R>(env, out, parts, warp_max_sum, warp_scale, 1, g0, heads, hd);
}

__device__ inline void attention_partial_vector(TaskEnv& env, const abi::TaskDesc& t, const Token& tok,
                                                 float* scratch, bool f16) {
  const int group = t.params.attention.group;
  if (group <= 2) {
    attention_vector_heads<2>(env, t, tok, scratch, f16, 0, group);
    return;
  }
  for (int g0 = 0; g0 < group; g0 += ATTENTION_ROWS) {
    attention_vector_heads<ATTENTION_ROWS>(env, t, tok, scratch, f16, g0, min(ATTENTION_ROWS, group - g0));
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

// Before the task's events fire (AttentionParams::stage_cache: the worker streams no weights,
// so its ring is idle): copies cache rows 0 .. min(pos, what the ring holds) - 1 into the ring
// with cp.async, so the passes read them from shared memory instead of waiting on HBM. Rows
// below the token's position were appended at earlier steps, which this worker has waited
// past (static and dynamic mode: a task runs on its compiled worker every step, and a single
// split appends its row itself) or which ended with an earlier launch (kernel-per-op). The
// position may still be the last step's when this step's embedding has not run yet (layer 0);
// then the staged rows stop one short, and the passes read the rest from global memory.
__device__ inline void start_cache_staging(TaskEnv& env, const abi::TaskDesc& t) {
  const Ref k_cache = env.ref(t, 7), v_cache = env.ref(t, 8), positions = env.ref(t, 5);
  const int hd = t.params.attention.head_dim;
  if (!attention_vector_fits(k_cache, v_cache, hd)) return;
  auto* shared_pos = reinterpret_cast<volatile int32_t*>(env.reduce);
  if (env.tid == 0) *shared_pos = *reinterpret_cast<const volatile int32_t*>(positions.data);
  consumer_sync();
  const StagedCache staged = staged_cache(env, hd);
  const int rows = max(0, min(int(*shared_pos), staged.capacity));
  const int vectors = staged.row_bytes / 16;
  const int64_t k_stride = k_cache.stride * 2, v_stride = v_cache.stride * 2;
  for (int i = env.tid; i < rows * vectors; i += CONSUMER_THREADS) {
    const int r = i / vectors, c = (i - r * vectors) * 16;
    copy16_async(const_cast<uint8_t*>(staged.k) + r * staged.row_bytes + c,
                 k_cache.data + r * k_stride + c);
    copy16_async(const_cast<uint8_t*>(staged.v) + r * staged.row_bytes + c,
                 v_cache.data + r * v_stride + c);
  }
  env.staged_rows = rows;
}

// The scalar passes as functions of their own: their registers are not the hot kernel's.
__device__ __noinline__ void attention_partial_narrow(TaskEnv& env, const abi::TaskDesc& t,
                                                      const Token& tok, float* scratch) {
  attention_partial_scalar<4>(env, t, tok, scratch);
}
__device__ __noinline__ void attention_partial_wide(TaskEnv& env, const abi::TaskDesc& t,
                                                    const Token& tok, float* scratch) {
  attention_partial_scalar<8>(env, t, tok, scratch);
}

template <KernelPaths P>
__device__ inline void run_attention_partial(TaskEnv& env, const abi::TaskDesc& t) {
  static_assert(MAX_HEAD_DIM == 256, "head dims per lane: 4 or 8");
  static_assert(SMEM_SCRATCH_OFFSET % 16 == 0, "the vector pass reads its scratch in vectors");
  const abi::AttentionParams& p = t.params.attention;
  const int hd = p.head_dim;
  wait_async_copies();  // this thread's staged cache rows; rotate_token's barrier, everyone's
  const Token tok = rotate_token(env, t, env.scratch);
  // Traced: the run split as a linear's is (TaskTiming), rotation | passes | tail.
  if (env.args.trace && env.tid == 0) env.stream_begin_ns = global_timer_ns();
  // After the token's area, a multiple of 4 floats: the passes' vectors stay aligned.
  float* scratch = env.scratch + attention_token_floats(uint32_t(p.group), uint32_t(hd));
  const Ref k = env.ref(t, 7), v = env.ref(t, 8);
  if constexpr (P == KernelPaths::kBf16Decode) {
    if (!attention_vector_fits(k, v, hd) || k.type != abi::RefType::kBF16) {
      return fail_unsupported(env);
    }
    for (int g0 = 0; g0 < p.group; g0 += ATTENTION_ROWS) {
      attention_mma_heads(env, t, tok, scratch, g0, min(ATTENTION_ROWS, p.group - g0));
    }
  } else if (attention_vector_fits(k, v, hd)) {
    attention_partial_vector(env, t, tok, scratch, k.type == abi::RefType::kF16);
  } else if (hd <= 128) {
    attention_partial_narrow(env, t, tok, scratch);
  } else {
    attention_partial_wide(env, t, tok, scratch);
  }
  if (env.args.trace && env.tid == 0) env.stream_end_ns = global_timer_ns();
}

}  // namespace megalith::kernels
