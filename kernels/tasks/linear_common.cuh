// The parts every linear task shares: the input row in shared memory (RMS-normalized or as
// is) and the matrix-vector product over the weight tile as its chunks arrive in the ring.
//
//   load_normalized_row(env, t, xs);               // after the input events
//   if (!stream_matvec(env, t.refs[2], xs, acc, part)) return;  // acc[o] = W[o, :] . xs
#pragma once

#include <stdint.h>

#include <type_traits>

#include "common/dtype.cuh"
#include "common/reduce.cuh"
#include "common/sync.cuh"
#include "megakernel/task_env.cuh"
#include "megakernel/weight_ring.cuh"

namespace megalith::kernels {

constexpr int ROW_LOADS = 4;  // 16-byte loads per thread in flight at once
// The bf16 decode kernel's: six, so that a 4096-wide row is one round of loads over the seven
// consumer warps instead of two, and Qwen3-8B's 12288-wide down input three instead of four.
// Eight made that kernel spill; the general kernel keeps four (docs/performance.md).
constexpr int DECODE_ROW_LOADS = 6;

// xs = row r of x (f32 activations), and the row's sum of squares in double. Each thread puts
// LOADS loads in flight before storing any, so a row costs one or two memory latencies
// instead of one per element.
template <int LOADS = ROW_LOADS>
__device__ inline double load_row(TaskEnv& env, const Ref& x, int r, float* xs) {
  const float* src = x.as<const float>() + int64_t(r) * x.stride;
  double sum_sq = 0;
  if ((reinterpret_cast<uintptr_t>(src) & 15) == 0 && x.cols % 4 == 0) {
    const int vectors = x.cols / 4;
    const auto* src4 = reinterpret_cast<const float4*>(src);
    auto* dst4 = reinterpret_cast<float4*>(xs);
    for (int base = 0; base < vectors; base += LOADS * CONSUMER_THREADS) {
      float4 v[LOADS];
#pragma unroll
      for (int j = 0; j < LOADS; ++j) {
        const int i = base + j * CONSUMER_THREADS + env.tid;
        if (i < vectors) v[j] = src4[i];
      }
#pragma unroll
      for (int j = 0; j < LOADS; ++j) {
        const int i = base + j * CONSUMER_THREADS + env.tid;
        if (i < vectors) {
          dst4[i] = v[j];
          sum_sq += double(v[j].x) * v[j].x + double(v[j].y) * v[j].y +
                    double(v[j].z) * v[j].z + double(v[j].w) * v[j].w;
        }
      }
    }
  } else {
    for (int base = 0; base < x.cols; base += LOADS * CONSUMER_THREADS) {
      float v[LOADS];
#pragma unroll
      for (int j = 0; j < LOADS; ++j) {
        const int i = base + j * CONSUMER_THREADS + env.tid;
        if (i < x.cols) v[j] = src[i];
      }
#pragma unroll
      for (int j = 0; j < LOADS; ++j) {
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

// The norm weight of an RMS-normalized linear (ref 1), as stored, copied with cp.async into
// the start of the scratch. The megakernel starts the copy before the task waits on its events
// (prepare_task) and load_normalized_row() waits for it, so the copy overlaps the wait and the
// input's loads instead of delaying the task when its inputs are already there.
__device__ inline void start_norm_weight_copy(TaskEnv& env, const abi::TaskDesc& t) {
  const Ref gamma = env.ref(t, 1);
  if (!gamma.present()) return;
  uint8_t* raw = reinterpret_cast<uint8_t*>(env.scratch);
  const int bytes = t.refs[0].cols * ref_elem_bytes(gamma.type);
  if ((reinterpret_cast<uintptr_t>(gamma.data) & 15) == 0 && bytes % 16 == 0) {
    for (int i = env.tid * 16; i < bytes; i += CONSUMER_THREADS * 16) copy16_async(raw + i, gamma.data + i);
  } else {
    for (int i = env.tid; i < bytes; i += CONSUMER_THREADS) raw[i] = gamma.data[i];
  }
}

// xs[i] = gamma[i] * (x[r, i] * inv_rms) for the task's input x (ref 0) and norm weight
// (ref 1, staged by start_norm_weight_copy), the CPU reference's order of operations; the
// sum of squares in double.
template <int LOADS = ROW_LOADS>
__device__ inline void load_normalized_row(TaskEnv& env, const abi::TaskDesc& t, float* xs,
                                           int r = 0) {
  const Ref x = env.ref(t, 0), gamma = env.ref(t, 1);
  const double inv_cols = 1.0 / double(x.cols);
  const double sum_sq = load_row<LOADS>(env, x, r, xs);
  wait_async_copies();  // this thread's part of the norm weight; block_sum's barrier, everyone's
  const double total = block_sum(sum_sq, env.reduce);
  const float inv_rms = rms_scale(total, inv_cols, double(t.params.linear.eps));
  if (gamma.type == abi::RefType::kBF16 && gamma.present() && x.cols % 4 == 0) {
    // Four elements a thread at a time, every iteration's loads independent of the last's:
    // the element-wise loop below waits out two shared-memory loads per element (get()'s
    // switch on the type keeps them apart), about 16 of them in a row on a 4096-wide row.
    const auto* g4 = reinterpret_cast<const uint2*>(env.scratch);
    auto* x4 = reinterpret_cast<float4*>(xs);
#pragma unroll 1
    for (int v = env.tid; v < x.cols / 4; v += CONSUMER_THREADS) {
      const uint2 g = g4[v];
      float4 a = x4[v];
      a.x = bf16_low_to_float(g.x) * (a.x * inv_rms);
      a.y = bf16_high_to_float(g.x) * (a.y * inv_rms);
      a.z = bf16_low_to_float(g.y) * (a.z * inv_rms);
      a.w = bf16_high_to_float(g.y) * (a.w * inv_rms);
      x4[v] = a;
    }
  } else {
    const Ref staged{reinterpret_cast<uint8_t*>(env.scratch), gamma.type, 1, x.cols, x.cols};
    for (int i = env.tid; i < x.cols; i += CONSUMER_THREADS) {
      xs[i] = (gamma.present() ? staged.get(0, i) : 1.0f) * (xs[i] * inv_rms);
    }
  }
  consumer_sync();
}

// xs = row r of x, as is.
template <int LOADS = ROW_LOADS>
__device__ inline void load_plain_row(TaskEnv& env, const Ref& x, int r, float* xs) {
  load_row<LOADS>(env, x, r, xs);
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

// The fast path of stream_matvec cuts a chunk into items: UNIT_COLS consecutive columns of R
// rows (R = 4, 2 or 1, as many as the chunk has). Lane l takes the quads (4 consecutive
// columns) at l*4 and l*4 + 128 (bf16, f16) or at l*4 (f32), so both its weight loads and its
// input loads are conflict-free, and it loads each input quad once for the R rows of the item:
// shared-memory traffic and instruction issue, not arithmetic, are what the consumers run
// short of.
template <class W>
constexpr int UNIT_QUADS = VEC<W> / 4;  // quads per lane in an item
template <class W>
constexpr int UNIT_COLS = 32 * VEC<W>;
static_assert(UNIT_COLS<__nv_bfloat16> == BF16_ITEM_COLS, "the bf16 decode kernel's items");

// Whether every chunk of the plan splits into whole items starting on 16 bytes in the stage:
// true for every real model's shapes.
template <class W>
__device__ __forceinline__ bool splits_into_items(const abi::TensorRef& w, const ChunkPlan& p) {
  static_assert(SEGMENT_ALIGN % UNIT_COLS<W> == 0, "segments split into whole items");
  return w.offset % 16 == 0 && p.cols % UNIT_COLS<W> == 0;
}

// A lane's quad of weights as loaded (8 bytes of bf16 or f16, 16 of f32), converted to floats
// only when used, which keeps the registers of a whole item's loads few.
template <class W>
using RawQuad = std::conditional_t<sizeof(W) == 4, uint4, uint2>;
template <class W>
__device__ __forceinline__ float quad_dot(const RawQuad<W>& raw, const float4& x, float acc) {
  if constexpr (std::is_same_v<W, __nv_bfloat16>) {
    acc = fmaf(bf16_low_to_float(raw.x), x.x, acc);
    acc = fmaf(bf16_high_to_float(raw.x), x.y, acc);
    acc = fmaf(bf16_low_to_float(raw.y), x.z, acc);
    return fmaf(bf16_high_to_float(raw.y), x.w, acc);
  } else {
    const W* e = reinterpret_cast<const W*>(&raw);
    acc = fmaf(to_float(e[0]), x.x, acc);
    acc = fmaf(to_float(e[1]), x.y, acc);
    acc = fmaf(to_float(e[2]), x.z, acc);
    return fmaf(to_float(e[3]), x.w, acc);
  }
}

// Adds each of the R rows' per-lane sums over the warp and accumulates row r's total into
// part[r * CONSUMER_WARPS + warp] (rows at or past `rows` are skipped). A transposed
// butterfly: each level hands half of the rows to the other half of the lanes, so R rows cost
// R - 1 + 5 - log2(R) shuffles instead of 5 R.
template <int R>
__device__ __forceinline__ void flush_rows(float (&sum)[R], int rows, int lane, int warp,
                                           float* part) {
  static_assert(R == 1 || R == 2 || R == 4, "R rows: 1, 2 or 4");
  int row = 0, offset = 16;
#pragma unroll
  for (int n = R; n > 1; n /= 2, offset /= 2) {
    const bool upper = lane & offset;
#pragma unroll
    for (int i = 0; i < n / 2; ++i) {
      const float keep = upper ? sum[i + n / 2] : sum[i];
      const float send = upper ? sum[i] : sum[i + n / 2];
      sum[i] = keep + __shfl_xor_sync(0xffffffffu, send, offset);
    }
    if (upper) row += n / 2;
  }
  float v = sum[0];
#pragma unroll
  for (int o = offset; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  if (lane % (32 / R) == 0 && row < rows) part[row * CONSUMER_WARPS + warp] += v;
}

// One item of stream_matvec_items: R rows x UNIT_COLS<W> columns at `w` (the lane's first
// quad of the item's first row; rows `row_bytes` apart) against S slots' input quads at `x`
// (the lane's first of slot 0; slots `x_stride` float4s apart), added into sum[s][r]. Each
// weight quad is loaded once for the S slots. Rows at or past `valid` are not loaded (a
// partial group); FULL says the group has all R rows, so the loads need no predicate.
template <class W, int R, int S, bool FULL>
__device__ __forceinline__ void matvec_item(const uint8_t* w, uint32_t row_bytes, const float4* x,
                                            uint32_t x_stride, int valid, float (&sum)[S][R]) {
  constexpr int Q = UNIT_QUADS<W>;
  float4 xq[S][Q];
#pragma unroll
  for (int s = 0; s < S; ++s) {
#pragma unroll
    for (int q = 0; q < Q; ++q) xq[s][q] = x[s * x_stride + q * 32];
  }
#pragma unroll
  for (int r = 0; r < R; ++r) {
    float d[S] = {};  // the item's own sums first: items are independent chains
#pragma unroll
    for (int q = 0; q < Q; ++q) {
      const uint8_t* at = w + r * row_bytes + q * 128 * sizeof(W);
      const RawQuad<W> raw =
          FULL || r < valid ? *reinterpret_cast<const RawQuad<W>*>(at) : RawQuad<W>{};
#pragma unroll
      for (int s = 0; s < S; ++s) d[s] = quad_dot<W>(raw, xq[s][q], d[s]);
    }
#pragma unroll
    for (int s = 0; s < S; ++s) sum[s][r] += d[s];
  }
}

// The fast path of stream_matvec: consumes the plan's chunks from the ring, adding each row's
// sums into part[row * CONSUMER_WARPS + warp]. Each warp takes a contiguous run of a chunk's
// items, so it covers one or two row groups; it keeps one sum per row of the group in
// registers and then adds them into its slot. Only that warp writes the slot, in chunk order,
// so no barrier is needed between chunks and the sums do not depend on timing. The consumers
// are what limits a linear's stream when HBM does not (megalith_gpu_weight_stream --sms 16,
// 2026-12-04: 46 GB/s per SM on 4096-column tiles of 384 rows and 36 on tiles of 32 rows,
// where the copies alone reach 63 and 57), so the loop keeps its index arithmetic out of the
// items: the chunk's place advances instead of being divided out, pointers step by an item,
// and full groups load unpredicated. Every chunk goes to all the consumer warps (a 32 KB bf16
// chunk is 16 items: three for five of seven warps, one and none for the others): when the
// two halves of the warps took alternate chunks, a stage was held until its half's longer
// runs were done, and Qwen3-8B ran 1% slower
// (docs/performance.md). With several slots (batch > 1: GROUPS) a chunk is taken
// `slot_groups` times, S slots at a time, their input rows `x_floats` apart and their partial
// sums `part_floats` apart; a slot's sums do not depend on the other slots (the batch fixes R
// and S, so they may differ from batch 1's in the last bits). Batch 1 compiles without the
// group loop: its registers are what the item loop was measured with.
template <class W, int R, int S, bool GROUPS>
__device__ __forceinline__ bool matvec_chunks(TaskEnv& env, const ChunkPlan& plan, const float* xs,
                                              float* part, uint32_t x_floats = 0,
                                              uint32_t part_floats = 0, int slot_groups = 1) {
  static_assert(GROUPS || S == 1, "one slot without groups");
  const float4* x_lane = reinterpret_cast<const float4*>(xs) + env.lane;
  const uint32_t x_stride = x_floats / 4;
  const uint32_t row_bytes = uint32_t(plan.seg_cols) * sizeof(W);
  constexpr uint32_t ITEM_BYTES = UNIT_COLS<W> * sizeof(W);
  constexpr int ITEM_QUADS = UNIT_COLS<W> / 4;
  int32_t row0 = 0, col0 = 0;  // chunk_at(plan, c), advanced chunk by chunk
  // The warp's run in a chunk depends only on the chunk's shape, the same for every chunk but
  // a tile's last row block and last segment: worked out (a division) when the shape changes.
  int shape_rows = -1, shape_cols = -1, items_per_row = 0, begin = 0, end = 0, group0 = 0;
  for (int32_t c = 0; c < plan.num_chunks; ++c) {
    const int rows = min(plan.rows_per_chunk, plan.rows - row0);
    const int cols = min(plan.seg_cols, plan.cols - col0);
    if (rows != shape_rows || cols != shape_cols) {
      shape_rows = rows;
      shape_cols = cols;
      items_per_row = cols / UNIT_COLS<W>;
      const int items = (rows + R - 1) / R * items_per_row;
      const int per_warp = (items + CONSUMER_WARPS - 1) / CONSUMER_WARPS;
      begin = min(items, env.warp * per_warp);
      end = min(items, begin + per_warp);
      group0 = begin < end ? begin / items_per_row : 0;
    }
    const uint8_t* stage = env.next_stage();
    if (stage == nullptr) return false;
    for (int g = 0; g < (GROUPS ? slot_groups : 1); ++g) {
      int group = group0;
      int first = begin - group * items_per_row;  // the run's first item within its group
      // Group by group of the warp's run: the inner loop has no shuffles or branches, so the
      // loads of several items are in flight together.
      for (int i = begin; i < end; i += items_per_row - first, ++group, first = 0) {
        const int n = min(end - i, items_per_row - first);
        const int valid = rows - group * R;
        const uint8_t* w = stage + group * R * row_bytes + first * ITEM_BYTES +
                           env.lane * 4 * sizeof(W);
        const float4* x = x_lane + (GROUPS ? g * S * x_stride : 0) + uint32_t(col0) / 4 +
                          first * ITEM_QUADS;
        float sum[S][R] = {};
        if (valid >= R) {
#pragma unroll 2
          for (int k = 0; k < n; ++k) {
            matvec_item<W, R, S, true>(w + k * ITEM_BYTES, row_bytes, x + k * ITEM_QUADS,
                                       x_stride, R, sum);
          }
        } else {
          for (int k = 0; k < n; ++k) {
            matvec_item<W, R, S, false>(w + k * ITEM_BYTES, row_bytes, x + k * ITEM_QUADS,
                                        x_stride, valid, sum);
          }
        }
#pragma unroll
        for (int s = 0; s < S; ++s) {
          flush_rows<R>(sum[s], valid, env.lane, env.warp,
                        part + (GROUPS ? (g * S + s) * part_floats : 0) +
                            (row0 + group * R) * CONSUMER_WARPS);
        }
      }
    }
    env.ring.release();
    col0 += plan.seg_cols;
    if (col0 >= plan.cols) {
      col0 = 0;
      row0 += plan.rows_per_chunk;
    }
  }
  return true;
}

// acc[o] = the sum of row o's partial sums, in warp order, for rows [0, rows).
__device__ __forceinline__ void sum_partials(TaskEnv& env, const float* part, int32_t rows,
                                             float* acc) {
  for (int o = env.tid; o < rows; o += CONSUMER_THREADS) {
    float s = 0;
#pragma unroll
    for (int k = 0; k < CONSUMER_WARPS; ++k) s += part[o * CONSUMER_WARPS + k];
    acc[o] = s;
  }
}

// No barrier after the sums: acc[o] is thread o's own (sum_partials and the epilogues take rows
// by the same stride), and the task's end has one; a second tile's product waits for this
// one's sums to leave `part` (run_linear).
template <class W, int R>
__device__ bool stream_matvec_items(TaskEnv& env, const ChunkPlan& plan, const float* xs,
                                    float* acc, float* part) {
  for (int i = env.tid; i < plan.rows * CONSUMER_WARPS; i += CONSUMER_THREADS) part[i] = 0;
  consumer_sync();
  if (!matvec_chunks<W, R, 1, false>(env, plan, xs, part)) return false;
  consumer_sync();
  sum_partials(env, part, plan.rows, acc);
  return true;
}

// The same for `slots` input rows x_floats apart (a multiple of S); acc and part hold one slot
// after another.
template <class W, int R, int S>
__device__ bool stream_matvec_slot_items(TaskEnv& env, const ChunkPlan& plan, const float* xs,
                                         uint32_t x_floats, int slots, float* acc, float* part) {
  const uint32_t part_floats = matvec_partial_floats(plan.rows);
  for (int i = env.tid; i < slots * int(part_floats); i += CONSUMER_THREADS) part[i] = 0;
  consumer_sync();
  if (!matvec_chunks<W, R, S, true>(env, plan, xs, part, x_floats, part_floats, slots / S)) {
    return false;
  }
  consumer_sync();
  for (int b = 0; b < slots; ++b) {
    sum_partials(env, part + b * part_floats, plan.rows, acc + b * plan.rows);
  }
  return true;  // as stream_matvec_items: acc[b * rows + o] is thread o's
}

// The product for several slots' input rows (batch > 1): acc[b * w.rows + o] = W[o, :] .
// xs[b * x_floats ...] for slot b. The item path takes 4 or 2 slots an item (of fewer rows), so
// a weight quad loaded from the stage serves them all (odd batches: a slot an item). Shapes that do not split into items
// deal each chunk's (row, slot) dot products over the warps; a (row, slot) is always the same
// warp's, which adds its chunks in order, so no barrier is needed between chunks. Either way a
// slot's sums depend on nothing but its own row. Out of line: batch 1's item loop,
// inlined in run_linear, keeps the registers it was measured with.
template <class W>
__device__ __noinline__ bool stream_matvec_slots(TaskEnv& env, const abi::TensorRef& w,
                                                 const float* xs, uint32_t x_floats, int slots,
                                                 float* acc, float* part) {
  const uint8_t* tile = tile_base(w);
  const ChunkPlan plan = plan_chunks(w);
  if (splits_into_items<W>(w, plan)) {
    if (slots % 4 == 0) return stream_matvec_slot_items<W, 1, 4>(env, plan, xs, x_floats, slots, acc, part);
    if (slots % 2 == 0 && plan.rows_per_chunk >= 2) {
      return stream_matvec_slot_items<W, 2, 2>(env, plan, xs, x_floats, slots, acc, part);
    }
    if (slots % 2 == 0) return stream_matvec_slot_items<W, 1, 2>(env, plan, xs, x_floats, slots, acc, part);
    if (plan.rows_per_chunk >= 4) {
      return stream_matvec_slot_items<W, 4, 1>(env, plan, xs, x_floats, slots, acc, part);
    }
    return stream_matvec_slot_items<W, 1, 1>(env, plan, xs, x_floats, slots, acc, part);
  }
  for (int32_t c = 0; c < plan.num_chunks; ++c) {
    const Chunk chunk = chunk_at(plan, c);
    const uint8_t* stage = env.next_stage();
    if (stage == nullptr) return false;
    const uint8_t* data = stage + chunk_skew(tile, plan, chunk);
    for (int u = env.warp; u < chunk.rows * slots; u += CONSUMER_WARPS) {
      const int r = u / slots, b = u % slots;
      const float d = warp_dot<W>(data + size_t(r) * plan.seg_cols * sizeof(W),
                                  xs + b * x_floats + chunk.col0, chunk.cols, env.lane);
      if (env.lane == 0) {
        float& a = acc[b * w.rows + chunk.row0 + r];
        a = chunk.col0 == 0 ? d : a + d;
      }
    }
    env.ring.release();
  }
  consumer_sync();
  return true;
}

// acc[o] = sum_i W[o, i] * xs[i] for every row o of the weight tile `w`, consuming its chunks
// from the ring; `part` has matvec_partial_floats() floats. Shapes that do not split into items
// (odd sizes) take the general path: a chunk of few rows (or one row's segment) is split
// across warps, whose partial sums are added in a fixed order, so results do not depend on
// timing.
template <class W>
__device__ __forceinline__ bool stream_matvec_typed(TaskEnv& env, const abi::TensorRef& w,
                                                    const float* xs, float* acc, float* part) {
  const uint8_t* tile = tile_base(w);
  const ChunkPlan plan = plan_chunks(w);
  if (splits_into_items<W>(w, plan)) {
    if (plan.rows_per_chunk >= 4) return stream_matvec_items<W, 4>(env, plan, xs, acc, part);
    if (plan.rows_per_chunk >= 2) return stream_matvec_items<W, 2>(env, plan, xs, acc, part);
    return stream_matvec_items<W, 1>(env, plan, xs, acc, part);
  }
  int parity = 0;
  for (int32_t c = 0; c < plan.num_chunks; ++c) {
    const Chunk chunk = chunk_at(plan, c);
    const uint8_t* stage = env.next_stage();
    if (stage == nullptr) return false;
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
          c0 < c1 ? warp_dot<W>(data + (size_t(r) * plan.seg_cols + c0) * sizeof(W),
                                xs + chunk.col0 + c0, c1 - c0, env.lane)
                  : 0.0f;
      if (env.lane == 0) {
        if (split == 1) {
          float& a = acc[chunk.row0 + r];
          a = chunk.col0 == 0 ? d : a + d;
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

// f16 and f32 weights take the product loop out of line: inlined beside bf16's, their copies
// made the megakernel's loop larger and every task slower, bf16 ones too (a bf16-only build
// ran 2.2% faster).
template <class W>
__device__ __noinline__ bool stream_matvec_out_of_line(TaskEnv& env, const abi::TensorRef& w,
                                                       const float* xs, float* acc, float* part) {
  return stream_matvec_typed<W>(env, w, xs, acc, part);
}

// Every slot's input row of a linear task (ref 0) into its scratch, linear_x_floats() apart:
// normalized with the staged norm weight (ref 1, start_norm_weight_copy), which then comes
// first in the scratch, or as they are. Returns the first row. The layout is the one
// task_scratch_floats() sizes (megakernel/layout.h).
template <KernelPaths P>
__device__ inline float* load_slot_rows(TaskEnv& env, const abi::TaskDesc& t, bool norm) {
  constexpr int LOADS = P == KernelPaths::kBf16Decode ? DECODE_ROW_LOADS : ROW_LOADS;
  const Ref x = env.ref(t, 0);
  const uint32_t x_floats = linear_x_floats(x.cols);
  float* xs = env.scratch + (norm ? x_floats : 0);
  for (int b = 0; b < x.rows; ++b) {
    if (norm) {
      load_normalized_row<LOADS>(env, t, xs + b * x_floats, b);
    } else {
      load_plain_row<LOADS>(env, x, b, xs + b * x_floats);
    }
  }
  return xs;
}

// acc[o] = W[o, :] . xs for the weight tile `w` (above); with `slots` > 1 input rows,
// x_floats apart, acc holds slots rows of w.rows and part matvec_partial_floats() per slot.
// On return acc[b * w.rows + o] is visible to thread o % CONSUMER_THREADS (the epilogues' rows),
// not necessarily to the others, and `part` may still be read: a barrier must come before
// `part` is used again.
// bf16's loop is inlined here, so the megakernel calls this from one place only (run_linear,
// tasks/linear.cuh): one copy of the loop, already in the instruction caches whichever linear
// kind runs, and no call's cost (measured: with a copy per kind Qwen3-0.6B's step was about
// 17% longer, with one out-of-line copy about 5%).
// On the kBf16Decode paths only bf16's inlined loop is there.
template <KernelPaths P = KernelPaths::kGeneral>
__device__ inline bool stream_matvec(TaskEnv& env, const abi::TensorRef& w, const float* xs,
                                     float* acc, float* part, int slots = 1,
                                     uint32_t x_floats = 0) {
  if (env.args.trace && env.tid == 0 && env.stream_begin_ns == 0) {
    env.stream_begin_ns = global_timer_ns();
  }
  bool ok;
  if constexpr (P == KernelPaths::kBf16Decode) {
    // Items of 4 rows only (bf16_decode_covers).
    const ChunkPlan plan = plan_chunks(w);
    if (slots > 1 || w.type != abi::RefType::kBF16 || plan.rows_per_chunk < BF16_DECODE_MIN_ROWS ||
        !splits_into_items<__nv_bfloat16>(w, plan)) {
      fail_unsupported(env);
      return false;
    }
    ok = stream_matvec_items<__nv_bfloat16, 4>(env, plan, xs, acc, part);
  } else if (slots > 1) {
    switch (w.type) {
      case abi::RefType::kBF16:
        ok = stream_matvec_slots<__nv_bfloat16>(env, w, xs, x_floats, slots, acc, part);
        break;
      case abi::RefType::kF16:
        ok = stream_matvec_slots<__half>(env, w, xs, x_floats, slots, acc, part);
        break;
      default: ok = stream_matvec_slots<float>(env, w, xs, x_floats, slots, acc, part); break;
    }
  } else {
    switch (w.type) {
      case abi::RefType::kBF16: ok = stream_matvec_typed<__nv_bfloat16>(env, w, xs, acc, part); break;
      case abi::RefType::kF16: ok = stream_matvec_out_of_line<__half>(env, w, xs, acc, part); break;
      default: ok = stream_matvec_out_of_line<float>(env, w, xs, acc, part); break;
    }
  }
  if (env.args.trace && env.tid == 0) env.stream_end_ns = global_timer_ns();
  return ok;
}

}  // namespace megalith::kernels
