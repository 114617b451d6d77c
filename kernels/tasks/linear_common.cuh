// The parts every linear task shares: the input row in shared memory (RMS-normalized or as
// is) and the matrix-vector product over the weight tile as its chunks arrive in the ring.
//
//   load_normalized_row(env, x, 0, gamma, eps, xs);   // after the input events
//   if (!stream_matvec(env, t.refs[2], xs, acc)) return;  // acc[o] = W[o, :] . xs
#pragma once

#include <stdint.h>

#include "common/dtype.cuh"
#include "common/reduce.cuh"
#include "common/sync.cuh"
#include "megakernel/task_env.cuh"
#include "megakernel/weight_ring.cuh"

namespace megalith::kernels {

constexpr int ROW_LOADS = 4;  // 16-byte loads per thread in flight at once

// xs = row r of x (f32 activations), and the row's sum of squares in double. Each thread puts
// ROW_LOADS loads in flight before storing any, so a row costs one or two memory latencies
// instead of one per element.
__device__ inline double load_row(TaskEnv& env, const Ref& x, int r, float* xs) {
  const float* src = x.as<const float>() + int64_t(r) * x.stride;
  double sum_sq = 0;
  if ((reinterpret_cast<uintptr_t>(src) & 15) == 0 && x.cols % 4 == 0) {
    const int vectors = x.cols / 4;
    const auto* src4 = reinterpret_cast<const float4*>(src);
    auto* dst4 = reinterpret_cast<float4*>(xs);
    for (int base = 0; base < vectors; base += ROW_LOADS * CONSUMER_THREADS) {
      float4 v[ROW_LOADS];
#pragma unroll
      for (int j = 0; j < ROW_LOADS; ++j) {
        const int i = base + j * CONSUMER_THREADS + env.tid;
        if (i < vectors) v[j] = src4[i];
      }
#pragma unroll
      for (int j = 0; j < ROW_LOADS; ++j) {
        const int i = base + j * CONSUMER_THREADS + env.tid;
        if (i < vectors) {
          dst4[i] = v[j];
          sum_sq += double(v[j].x) * v[j].x + double(v[j].y) * v[j].y +
                    double(v[j].z) * v[j].z + double(v[j].w) * v[j].w;
        }
      }
    }
  } else {
    for (int base = 0; base < x.cols; base += ROW_LOADS * CONSUMER_THREADS) {
      float v[ROW_LOADS];
#pragma unroll
      for (int j = 0; j < ROW_LOADS; ++j) {
        const int i = base + j * CONSUMER_THREADS + env.tid;
        if (i < x.cols) v[j] = src[i];
      }
#pragma unroll
      for (int j = 0; j < ROW_LOADS; ++j) {
        const int i = base + j * CONSUMER_THREADS + env.tid;
        if (i < x.cols) {
          xs[i] = v[j];
          sum_sq += double(v[j]) * v[j];
        }
      }
    }
  }
  return sum_sq;
}

// xs[i] = gamma[i] * (x[r, i] * inv_rms), the CPU reference's order of operations; the sum of
// squares in double. Absent gamma means 1.
__device__ inline void load_normalized_row(TaskEnv& env, const Ref& x, int r, const Ref& gamma,
                                           float eps, float* xs) {
  const double total = block_sum(load_row(env, x, r, xs), env.reduce);
  const float inv_rms = float(1.0 / sqrt(total / double(x.cols) + double(eps)));
  for (int base = 0; base < x.cols; base += 2 * ROW_LOADS * CONSUMER_THREADS) {
    float g[2 * ROW_LOADS];
#pragma unroll
    for (int j = 0; j < 2 * ROW_LOADS; ++j) {
      const int i = base + j * CONSUMER_THREADS + env.tid;
      g[j] = gamma.present() && i < x.cols ? gamma.get(0, i) : 1.0f;
    }
#pragma unroll
    for (int j = 0; j < 2 * ROW_LOADS; ++j) {
      const int i = base + j * CONSUMER_THREADS + env.tid;
      if (i < x.cols) xs[i] = g[j] * (xs[i] * inv_rms);
    }
  }
  consumer_sync();
}

// xs = row r of x, as is.
__device__ inline void load_plain_row(TaskEnv& env, const Ref& x, int r, float* xs) {
  load_row(env, x, r, xs);
  consumer_sync();
}

// One warp's dot product of `n` weights of type W at `w` (shared memory) with floats at `x`
// (shared memory, 16-byte aligned); every lane gets the result. 16-byte loads when `w` is
// aligned, element loads otherwise (odd row sizes).
template <class W>
__device__ __forceinline__ float warp_dot(const uint8_t* w, const float* x, int n, int lane) {
  const W* we = reinterpret_cast<const W*>(w);
  float acc = 0;
  int done = 0;
  if ((reinterpret_cast<uintptr_t>(w) & 15) == 0) {
    const int vectors = n / VEC<W>;
    for (int v = lane; v < vectors; v += 32) {
      const VecF<W> wv = load_vec<W>(w + size_t(v) * 16);
      const float4* xv = reinterpret_cast<const float4*>(x + v * VEC<W>);
#pragma unroll
      for (int j = 0; j < VEC<W> / 4; ++j) {
        const float4 xx = xv[j];
        acc = fmaf(wv.v[4 * j + 0], xx.x, acc);
        acc = fmaf(wv.v[4 * j + 1], xx.y, acc);
        acc = fmaf(wv.v[4 * j + 2], xx.z, acc);
        acc = fmaf(wv.v[4 * j + 3], xx.w, acc);
      }
    }
    done = vectors * VEC<W>;
  }
  for (int i = done + lane; i < n; i += 32) acc = fmaf(to_float(we[i]), x[i], acc);
  return warp_sum(acc);
}

// acc[o] = sum_i W[o, i] * xs[i] for every row o of the weight tile `w`, consuming its chunks
// from the ring. A chunk of few rows (or one row's segment) is split across warps, whose
// partial sums are added in a fixed order, so results do not depend on timing.
template <class W>
__device__ bool stream_matvec_typed(TaskEnv& env, const abi::TensorRef& w, const float* xs,
                                    float* acc) {
  const uint8_t* tile = tile_base(w);
  const ChunkPlan plan = plan_chunks(w);
  int parity = 0;
  for (int32_t c = 0; c < plan.num_chunks; ++c) {
    const Chunk chunk = chunk_at(plan, c);
    const uint8_t* stage = env.ring.wait(env.args, env.task, env.step);
    if (stage == nullptr) {
      env.failed = true;
      return false;
    }
    const uint8_t* data = stage + chunk_skew(tile, plan, chunk);
    // Warps per row: all warps share a row when the chunk has fewer rows than warps.
    const int split = chunk.rows >= CONSUMER_WARPS ? 1 : CONSUMER_WARPS / chunk.rows;
    const int units = chunk.rows * split;
    const int piece = int(align_up(uint32_t((chunk.cols + split - 1) / split), 8));
    float* sums = env.chunk_sums + parity * CONSUMER_WARPS;
    for (int u = env.warp; u < units; u += CONSUMER_WARPS) {
      const int r = u / split, c0 = (u % split) * piece;
      const int c1 = min(chunk.cols, c0 + piece);
      const float d =
          c0 < c1 ? warp_dot<W>(data + (size_t(r) * plan.cols + c0) * sizeof(W),
                                xs + chunk.col0 + c0, c1 - c0, env.lane)
                  : 0.0f;
      if (env.lane == 0) {
        if (split == 1) {
          acc[chunk.row0 + r] = d;
        } else {
          sums[u] = d;
        }
      }
    }
    env.ring.release();
    if (split > 1) {
      consumer_sync();
      if (env.tid < chunk.rows) {
        float s = 0;
        for (int k = 0; k < split; ++k) s += sums[env.tid * split + k];
        float& a = acc[chunk.row0 + env.tid];
        a = chunk.col0 == 0 ? s : a + s;
      }
      // The other buffer next: a warp can only write it again after the next chunk's
      // barrier, which the readers of this one reach only when done.
      parity ^= 1;
    }
  }
  consumer_sync();
  return true;
}

__device__ inline bool stream_matvec(TaskEnv& env, const abi::TensorRef& w, const float* xs,
                                     float* acc) {
  switch (w.type) {
    case abi::RefType::kBF16: return stream_matvec_typed<__nv_bfloat16>(env, w, xs, acc);
    case abi::RefType::kF16: return stream_matvec_typed<__half>(env, w, xs, acc);
    default: return stream_matvec_typed<float>(env, w, xs, acc);
  }
}

}  // namespace megalith::kernels
