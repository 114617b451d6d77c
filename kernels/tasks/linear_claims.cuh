// A claimed linear's consumers (compiler/claimed_rows.h): the task's producer claims groups of
// the op's rows at run time and streams them, each stage marked with its group; the consumers
// multiply every group that comes against the input row, keeping its sums in the slot of the
// order it came in, until a stage says END_OF_CLAIMS; then they write each claimed row's
// output with the epilogue its kind has for its own tile (the same arithmetic, so the
// results are the tile's).
//
//   if (claims_rows(env.args, t)) return run_claimed_linear(env, t);
#pragma once

#include <math.h>

#include "megakernel/task_env.cuh"
#include "tasks/linear_common.cuh"

namespace megalith::kernels {

// `rows` rows of a group's weight (cols columns of `type`) from the ring, their sums added into
// part[row * CONSUMER_WARPS + warp]; false when the watchdog fired. The host checked that
// claimed weights split into items.
template <class W>
__device__ __forceinline__ bool matvec_group_typed(TaskEnv& env, const ChunkPlan& plan,
                                                   const float* xs, float* part) {
  if (plan.rows_per_chunk >= 4) return matvec_chunks<W, 4, 1, false>(env, plan, xs, part);
  if (plan.rows_per_chunk >= 2) return matvec_chunks<W, 2, 1, false>(env, plan, xs, part);
  return matvec_chunks<W, 1, 1, false>(env, plan, xs, part);
}
// The chunk plan of a group of `rows` rows (the stage holds them from its start).
__device__ __forceinline__ ChunkPlan group_plan(abi::RefType type, int32_t rows, int32_t cols) {
  abi::TensorRef w{};
  w.type = type;
  w.rows = rows;
  w.cols = cols;
  w.row_stride = cols;
  return plan_chunks(w);
}
// `full`: the plan of a full group, computed once per task, for its integer divisions (per
// group they were a tenth of the claimed run's samples); a part's shorter last group plans
// its own.
__device__ __forceinline__ bool matvec_group(TaskEnv& env, abi::RefType type,
                                             const ChunkPlan& full, int32_t rows, const float* xs,
                                             float* part) {
  const ChunkPlan plan = rows == full.rows ? full : group_plan(type, rows, full.cols);
  switch (type) {
    case abi::RefType::kBF16: return matvec_group_typed<__nv_bfloat16>(env, plan, xs, part);
    case abi::RefType::kF16: return matvec_group_typed<__half>(env, plan, xs, part);
    default: return matvec_group_typed<float>(env, plan, xs, part);
  }
}

// Row `row` of a claimed part's output, from its sums: the kind's tile epilogue.
__device__ __forceinline__ void claimed_epilogue(abi::TaskKind kind, const ClaimPart& part,
                                                 int32_t row, float sum, float up_sum) {
  const Ref out = make_ref(part.out), bias = make_ref(part.bias);
  const float b = bias.present() ? bias.get(0, row) : 0.0f;
  switch (kind) {
    case abi::TaskKind::kLinearResidual: out.set(0, row, out.get(0, row) + (sum + b)); return;
    case abi::TaskKind::kRmsNormGateUpSilu: {
      const Ref up_bias = make_ref(part.up_bias);
      const float g = sum + b;
      const float u = up_sum + (up_bias.present() ? up_bias.get(0, row) : 0.0f);
      out.set(0, row, g / (1.0f + expf(-g)) * u);
      return;
    }
    default: out.set(0, row, sum + b); return;
  }
}

// The input row (after the staged norm weight, when normalized), then the op's description
// (the epilogue's refs without a global load each), in the task's scratch.
__device__ __forceinline__ float* claimed_input_row(TaskEnv& env, const abi::TaskDesc& t) {
  return env.scratch + (abi::linear_form(t.kind).norm ? linear_x_floats(t.refs[0].cols) : 0);
}
__device__ __forceinline__ ClaimOp* claimed_op_copy(TaskEnv& env, const abi::TaskDesc& t) {
  return reinterpret_cast<ClaimOp*>(claimed_input_row(env, t) + linear_x_floats(t.refs[0].cols));
}

// The op's description, copied with cp.async before the task waits on its events
// (prepare_task), as the norm weight is: loaded after the wait, it put a memory latency more
// in the claimed tasks' input phase (traced: 1.7-2 us longer than a tile's).
__device__ inline void start_claimed_op_copy(TaskEnv& env, const abi::TaskDesc& t) {
  auto* to = reinterpret_cast<uint8_t*>(claimed_op_copy(env, t));
  const auto* from =
      reinterpret_cast<const uint8_t*>(env.args.claims.ops + t.params.linear.claim_op);
  for (int i = env.tid * 16; i < int(sizeof(ClaimOp)); i += CONSUMER_THREADS * 16) {
    copy16_async(to + i, from + i);
  }
}

__device__ __forceinline__ void claimed_linear(TaskEnv& env, const abi::TaskDesc& t) {
  const abi::LinearForm form = abi::linear_form(t.kind);
  const bool norm = form.norm;
  const int weights = form.weights;
  const int32_t group_rows = t.params.linear.claim_rows;
  const int32_t room = group_rows * t.params.linear.claim_capacity;  // rows of each weight
  const Ref x = env.ref(t, 0);
  float* xs = claimed_input_row(env, t);
  const ClaimOp* op = claimed_op_copy(env, t);
  float* acc = xs + linear_x_floats(x.cols) + sizeof(ClaimOp) / 4;
  float* part = acc + weights * room;
  auto* claimed = reinterpret_cast<int32_t*>(part + weights * room * CONSUMER_WARPS);
  for (int i = env.tid; i < weights * room * CONSUMER_WARPS; i += CONSUMER_THREADS) part[i] = 0;
  if (norm) {
    load_normalized_row(env, t, xs);  // waits for the async copies, ends with a barrier
  } else {
    load_row(env, x, 0, xs);
    wait_async_copies();  // this thread's part of the op's description
    consumer_sync();
  }
  const ClaimGroups groups(*op);
  const abi::RefType type = op->parts[0].weight.type;
  const ChunkPlan full = group_plan(type, group_rows, op->parts[0].weight.cols);
  if (env.args.trace && env.tid == 0) env.stream_begin_ns = global_timer_ns();
  int32_t n = 0;
  for (;;) {
    if (env.next_stage() == nullptr) return;
    const int32_t g = env.ring.group();
    if (g == END_OF_CLAIMS) {
      env.ring.release();
      break;
    }
    if (env.tid == 0) claimed[n] = g;
    const int32_t group = groups.size(groups.part(g), g);
    // A chunk's items go to the warps by its geometry alone, so a group's sums do not depend
    // on which task claimed it.
    for (int w = 0; w < weights; ++w) {
      float* sums = part + (w * room + n * group_rows) * CONSUMER_WARPS;
      if (!matvec_group(env, type, full, group, xs, sums)) return;
    }
    ++n;
  }
  consumer_sync();
  for (int w = 0; w < weights; ++w) {
    sum_partials(env, part + w * room * CONSUMER_WARPS, n * group_rows, acc + w * room);
  }
  consumer_sync();
  // Where a tile's stream ends too (stream_matvec): after the sums, before the epilogue.
  if (env.args.trace && env.tid == 0) env.stream_end_ns = global_timer_ns();
  for (int i = env.tid; i < n * group_rows; i += CONSUMER_THREADS) {
    const int32_t g = claimed[i / group_rows];
    const int p = groups.part(g);
    const int32_t row = groups.row0(p, g) + i % group_rows;
    if (row < groups.rows[p]) {
      claimed_epilogue(t.kind, op->parts[p], row, acc[i], weights > 1 ? acc[room + i] : 0.0f);
    }
  }
}

// Out of line: inlined beside the tiles' path it took that path's registers (ptxas: the
// kernel's spills went from 336/320 to 548/588 B and stream_matvec left the loop). Out of
// line, the caller's `env` lives in local memory, and every chunk's ring state and stage
// address would be a local load, which under the weight traffic misses L1 (shared memory
// takes nearly all of it) and waits for L2 (the profile: a dozen such loads a chunk and warp).
// So the consumers work on a copy, which stays in registers, and hand the ring back.
__device__ __noinline__ void run_claimed_linear(TaskEnv& env, const abi::TaskDesc& t) {
  TaskEnv local = env;
  claimed_linear(local, t);
  env.ring = local.ring;
  env.failed = local.failed;
  env.stream_begin_ns = local.stream_begin_ns;
  env.stream_end_ns = local.stream_end_ns;
  env.stalled_ns = local.stalled_ns;
}

}  // namespace megalith::kernels
