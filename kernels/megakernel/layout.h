// What the host and the megakernel agree on: the launch arguments, the error record a stuck
// launch leaves behind, the block shape, and the shared-memory plan. Plain C++ (nvcc and g++
// both compile it), so the host sizes shared memory with the very functions the device uses.
//
//   MegakernelArgs args = {...};
//   args.scratch_floats = max over tasks of task_scratch_floats(task);
//   size_t smem = megakernel_smem_bytes(args.scratch_floats, args.num_stages);
#pragma once

#include <stdint.h>

#include "megalith/abi/task_abi.h"

namespace megalith::kernels {

// A worker CTA: CONSUMER_WARPS warps wait on events and compute, one producer warp streams
// the weights of the queue's tasks into the shared-memory ring ahead of them. Eight warps in
// all, so that each of the SM's four register files holds two of them and a thread may have
// 255 registers (nine warps put three on one file: 168 a thread, and the static loop spilled).
constexpr int CONSUMER_WARPS = 7;
constexpr int CONSUMER_THREADS = CONSUMER_WARPS * 32;
constexpr int PRODUCER_WARP = CONSUMER_WARPS;
constexpr int WORKER_THREADS = CONSUMER_THREADS + 32;

// The weight ring: stages of STAGE_BYTES, each filled by one cp.async.bulk (sm_90) or the
// producer warp's cp.async pieces (sm_80). A chunk carries at most CHUNK_PAYLOAD bytes so its
// 16-byte-aligned superset still fits a stage.
constexpr int STAGE_BYTES = 32768;
constexpr int CHUNK_PAYLOAD = STAGE_BYTES - 32;
// Row segments (rows longer than a stage) start at multiples of this many elements: one warp
// unit of bf16 weights (32 lanes x 8).
constexpr int SEGMENT_ALIGN = 256;
// The pieces a request to L2 (cp.async.bulk.prefetch.L2) is cut into (bulk_prefetch_l2_range
// in common/sync.cuh: the ring's L2 request and the fence probe's, which measures it).
constexpr uint32_t L2_PREFETCH_PIECE = 65536;
constexpr int MAX_STAGES = 8;
constexpr int MIN_STAGES = 2;
// Three stages stream as fast as more (docs/performance.md). More take their shared memory
// from L1, where the general kernel's local memory lives (a fourth stage left Qwen3-8B's
// 92 KB of L1 at 60 KB, and its step 4-5% longer, with the producer's copies in flight held at
// three).
constexpr int DEFAULT_STAGES = 3;

// Largest head_dim the attention and rotary tasks handle (8 values per lane).
constexpr int MAX_HEAD_DIM = 256;
// Query heads of a KV head's group one attention pass handles together: every key and value
// row loaded serves all of them. Larger groups take several passes.
constexpr int ATTENTION_ROWS = 4;
// The vector attention pass (cache rows of at most 256 bytes, 16-byte aligned): each consumer
// warp takes rounds of 32 / ATTENTION_KEY_LANES keys, each key's row scored by
// ATTENTION_KEY_LANES lanes.
constexpr int ATTENTION_KEY_LANES = 4;
constexpr int ATTENTION_MAX_ROW_BYTES = 256;
// Its scratch: the query heads, every warp's weighted values (a warp's lanes hold at most 32
// vectors of 8 values per head: 32 / (head_dim / 8) keys' slots of a row's columns), and each
// warp's max, sum and weight in the merge per head.
MEGALITH_HOST_DEVICE constexpr uint32_t attention_vector_scratch_floats(uint32_t hd) {
  return ATTENTION_ROWS * hd + CONSUMER_WARPS * 32 * 8 * ATTENTION_ROWS +
         3 * CONSUMER_WARPS * ATTENTION_ROWS;
}

enum class MegakernelFault : uint32_t {
  kNone = 0,
  kEventTimeout = 1,     // a task waited on an event longer than the watchdog allows
  kRingTimeout = 2,      // a weight chunk or a free stage never came
  kUnsupportedTask = 3,  // a task the kernel cannot run (the host validates, so a bug)
  kDispatchTimeout = 4,  // dynamic mode: a worker or a scheduler waited that long for work
};

// Written once, by the first worker that gives up; read by the host after the launch.
struct MegakernelError {
  uint32_t fault;  // MegakernelFault
  uint32_t worker;
  uint32_t task;
  uint32_t event;  // kEventTimeout: the event waited on
  int64_t step;
  uint64_t counter;  // kEventTimeout: the event's counter when the watchdog fired
  uint64_t target;   // ... and the value the task needed
};

// When a task's wait began, when its events were ready, when it began and ended streaming its
// weights (0 for tasks without weights), and when it had signalled, in nanoseconds of the
// GPU's global timer; and the SM the worker ran on.
struct TaskTrace {
  uint64_t wait_ns, ready_ns, stream_begin_ns, stream_end_ns, done_ns;
  uint32_t sm;
  uint32_t stalled_ns;  // of the stream, thread 0's time waiting for weight chunks to land
};

// An event wait with its trigger count, so a waiting thread needs no second lookup.
struct WaitTarget {
  uint32_t event;
  uint32_t triggers;  // of the event, per step
  uint32_t step_offset;
  uint32_t reserved;
};

constexpr int INLINE_WAITS = 4;

// Claimed rows (compiler/claimed_rows.h) as the producer and the consumers read them: the
// host's ClaimedOp with every ref's offset an absolute address.
constexpr int MAX_CLAIM_PARTS = 3;
struct ClaimPart {
  abi::TensorRef weight, up_weight, bias, up_bias, out;
  int32_t first_group, groups, reserved[2];
};
struct ClaimOp {
  int32_t num_parts, group_rows, total_groups, capacity;
  ClaimPart parts[MAX_CLAIM_PARTS];
};
static_assert(sizeof(ClaimOp) % 16 == 0, "consumers copy a ClaimOp in 16-byte pieces");
struct ClaimArgs {
  const ClaimOp* ops;   // by LinearParams::claim_op
  uint32_t* counters;   // per claimed op, groups claimed at this step; nullptr: claims off
  uint32_t num_ops;
  // The sink's event: the sample task resets the counters, so step s claims once step s - 1
  // has sampled.
  WaitTarget step_end;
};
// A ring stage's group id: the claimed group whose rows it carries, or this when the task's
// claims are over (the stage carries no bytes).
constexpr int32_t END_OF_CLAIMS = -1;

// One entry of a worker's queue as the device reads it: the task's descriptor, where every
// present ref's `offset` is the absolute device address of its window (the host resolves the
// buffers once, so no task looks a base pointer up), and its first waits. A worker copies the
// next entry into shared memory while it runs the current one.
struct alignas(16) QueueEntry {
  abi::TaskDesc task;
  uint32_t task_index;       // in the task graph
  uint32_t signal_triggers;  // of the event the task signals (dynamic mode: who activates it)
  WaitTarget waits[INLINE_WAITS];  // waits beyond these: MegakernelArgs::waits[wait_begin + i]
};
static_assert(sizeof(QueueEntry) == 512, "QueueEntry: the size the megakernel was measured with");

// A position's token as the sample task publishes it to host-mapped memory during the launch.
struct PublishedToken {
  int32_t token;
  float logprob;
};

// Dynamic mode's schedulers: warps of one CTA launched after the workers, on an SM of its own.
constexpr int SCHEDULER_WARPS = 8;
static_assert(SCHEDULER_WARPS * 32 <= WORKER_THREADS, "the schedulers' warps fit one CTA");

// Dynamic mode: a task that consumes an event, as the event's scheduler sees it.
struct DispatchTarget {
  uint32_t entry;        // the task's queue entry
  uint32_t worker;       // whose dispatch log gets it (its compiled worker)
  uint32_t wait_count;   // events the task waits on: it is ready at step s when its join
                         // counter reaches wait_count * (s + 1)
  uint32_t step_offset;  // the event of step s serves the task's step s + step_offset
};

// Dynamic mode's state (MegakernelArgs::dynamic; num_schedulers 0 in static mode). A launch of S steps
// runs each task once per step, so every log has a fixed room and never wraps: worker w's
// tasks go to dispatch_log[queue_begin[w] * S ...], and scheduler s's activated events to
// activation_log[s * activation_room ...]. An entry is (step - first_step + 1) << 32 | index,
// never 0; the host zeroes the logs and counts before each launch.
struct DynamicArgs {
  uint64_t* dispatch_log;
  uint32_t* dispatch_count;  // per worker: entries appended
  uint64_t* activation_log;
  uint32_t* activation_count;  // per scheduler
  uint64_t activation_room;    // entries per scheduler: its events times the steps
  uint64_t* joins;             // per queue entry; they only grow, across launches
  const uint32_t* target_begin;  // per event, into targets: num_events + 1 entries
  const DispatchTarget* targets;
  uint32_t num_events;
  uint32_t num_schedulers;  // warps of the CTA after the workers; event e goes to e % S
  // Per event, its triggers a step: a task's second event's (TaskDesc::second_signal), which
  // its queue entry leaves out to keep 512 bytes.
  const uint32_t* event_triggers;
};

struct MegakernelArgs {
  const QueueEntry* entries;    // every worker's queue, concatenated
  const uint32_t* queue_begin;  // num_workers + 1 entries
  const WaitTarget* waits;      // indexed by TaskDesc::wait_begin
  uint64_t* counters;           // one per event; they only grow, across launches
  MegakernelError* error;
  uint32_t* abort_flag;  // set with the error record; every spinning thread leaves
  int64_t first_step, end_step;
  uint64_t watchdog_ns;     // a spin longer than this is a fault; 0 waits forever
  uint32_t scratch_floats;  // per-task shared-memory scratch, max of task_scratch_floats()
  uint32_t num_stages;      // ring stages, MIN_STAGES..MAX_STAGES
  uint32_t per_thread_release;  // 1: every consumer thread frees ring stages (racecheck runs)
  // Optional timing trace (nullptr: off): for queue entry q at step s, TaskTrace record
  // (s - first_step) * queue_length + q.
  TaskTrace* trace;
  uint32_t queue_length;  // entries of all queues together
  // Optional (nullptr: off), host-mapped: the sample task writes each position's token to
  // published[position], then stores position + 1 to *published_count with a system-scope
  // release, so the host streams tokens while the launch runs.
  PublishedToken* published;
  uint64_t* published_count;
  // Dynamic mode (num_schedulers > 0): schedulers dispatch each task once its events fired.
  DynamicArgs dynamic;
  uint32_t num_workers;
  // Kernel-per-op mode: the step to run, read from device memory at each launch, so that one
  // captured CUDA graph of a step's launches serves every step (it ends by adding one to it).
  int64_t* device_step;
  // Static mode: the claimed ops (counters nullptr in the other modes).
  ClaimArgs claims;
};

MEGALITH_HOST_DEVICE constexpr uint32_t align_up(uint32_t v, uint32_t a) { return (v + a - 1) / a * a; }

// An attention task's rotation table, filled before its events fire: the query and key
// heads' norm weights as floats, then each rotation pair's cosine, sine and the position they
// are for, each a multiple of 4 floats.
MEGALITH_HOST_DEVICE constexpr uint32_t attention_table_floats(uint32_t hd) {
  return 2 * align_up(hd, 4) + 3 * align_up(hd / 2, 4);
}

// An attention task's token: the rotation table, then its rotated query heads, the key being
// rotated, and its key and value rows as the caches hold them (at most 4 bytes an element),
// each a multiple of 4 floats.
MEGALITH_HOST_DEVICE constexpr uint32_t attention_token_floats(uint32_t group, uint32_t hd) {
  return attention_table_floats(hd) + align_up(group * hd, 4) + 3 * align_up(hd, 4);
}

// Shared memory, in order: 2 * MAX_STAGES mbarriers (full, empty), each stage's group id, the
// consumers' two task counts, the reduction area (two double buffers of CONSUMER_WARPS * 2
// words each), two queue entries (the current task's and the next one's), the task scratch,
// then the ring, aligned to 128 bytes for the bulk copies.
constexpr uint32_t SMEM_BARRIER_BYTES = 2 * MAX_STAGES * 8;
constexpr uint32_t SMEM_STAGE_GROUP_OFFSET = SMEM_BARRIER_BYTES;
// Two counts the producer polls (PrefillHold): the tasks the consumers have finished
// (signalled), before it streams a task's weights past its first PREFILL_BEFORE_TAIL chunks,
// and the tasks whose input rows they have loaded, past PREFILL_BEFORE_INPUT chunks.
constexpr uint32_t SMEM_DONE_OFFSET = SMEM_STAGE_GROUP_OFFSET + MAX_STAGES * 4;
constexpr uint32_t SMEM_REDUCE_OFFSET = SMEM_DONE_OFFSET + 16;
constexpr uint32_t SMEM_REDUCE_BYTES = 2 * 2 * CONSUMER_WARPS * 8;
constexpr uint32_t SMEM_ENTRY_OFFSET = SMEM_REDUCE_OFFSET + SMEM_REDUCE_BYTES;
constexpr uint32_t SMEM_SCRATCH_OFFSET = SMEM_ENTRY_OFFSET + 2 * sizeof(QueueEntry);
MEGALITH_HOST_DEVICE constexpr uint32_t megakernel_ring_offset(uint32_t scratch_floats) {
  return align_up(SMEM_SCRATCH_OFFSET + scratch_floats * 4, 128);
}
MEGALITH_HOST_DEVICE constexpr uint32_t megakernel_smem_bytes(uint32_t scratch_floats,
                                                             uint32_t num_stages) {
  return megakernel_ring_offset(scratch_floats) + num_stages * STAGE_BYTES;
}

// The scratch of a linear: for the RMS-normalized ones the norm weight, then the input row
// of each slot (normalized), each padded to 8 floats; one accumulator per slot and output row
// of every weight part; each consumer warp's partial sum of every row of a part, per slot.
MEGALITH_HOST_DEVICE constexpr uint32_t linear_x_floats(int32_t in_features) {
  return align_up(uint32_t(in_features), 8);
}
MEGALITH_HOST_DEVICE constexpr uint32_t matvec_partial_floats(int32_t rows) {
  return uint32_t(rows) * CONSUMER_WARPS;
}

// A claimed linear (claim_rows > 0): the input row (after the norm weight for the normalized
// kinds), a copy of its ClaimOp, then for each weight of a group an accumulator and every
// consumer warp's partial sum per row of claim_capacity groups, then the claimed groups' ids.
MEGALITH_HOST_DEVICE constexpr uint32_t claimed_linear_floats(int32_t in_features, bool norm,
                                                              int weights, int32_t group_rows,
                                                              int32_t capacity) {
  return (norm ? 2 : 1) * linear_x_floats(in_features) + uint32_t(sizeof(ClaimOp) / 4) +
         uint32_t(weights * group_rows * capacity) * (1 + CONSUMER_WARPS) + uint32_t(capacity);
}

// Shared-memory floats a task needs while it runs.
MEGALITH_HOST_DEVICE inline uint32_t task_scratch_floats(const abi::TaskDesc& t) {
  using abi::TaskKind;
  const abi::LinearParams& lp = t.params.linear;
  const abi::LinearForm form = abi::linear_form(t.kind);
  const bool claimed = abi::claims_rows(t.kind, t.params);
  // Claims are off in some modes: then the task computes its tile.
  const uint32_t claims =
      claimed ? claimed_linear_floats(t.refs[0].cols, form.norm, form.weights, lp.claim_rows,
                                      lp.claim_capacity)
              : 0;
  if (form.weights > 0) {
    // run_linear's layout: the norm weight (normalized kinds), each slot's input row, each
    // weight tile's products per slot (a kind's tiles have the same rows), the partial sums.
    const uint32_t slots = uint32_t(t.refs[0].rows), rows = uint32_t(t.refs[form.weight[0]].rows);
    const uint32_t tile = (uint32_t(form.norm) + slots) * linear_x_floats(t.refs[0].cols) +
                          slots * (uint32_t(form.weights) * rows + matvec_partial_floats(rows));
    return tile > claims ? tile : claims;
  }
  switch (t.kind) {
    case TaskKind::kAttentionPartial: {
      // The rotation table and the token's rotated queries, key and value rows, then the
      // scalar pass's running max, sum and output row per consumer warp and query head, or the
      // vector pass's scratch, whichever is larger.
      const uint32_t hd = uint32_t(t.params.attention.head_dim);
      const uint32_t scalar = CONSUMER_WARPS * ATTENTION_ROWS * (hd + 2);
      const uint32_t vector = attention_vector_scratch_floats(hd);
      return attention_token_floats(uint32_t(t.params.attention.group), hd) +
             (scalar > vector ? scalar : vector);
    }
    case TaskKind::kAttentionMerge:
      // Every row's split weights.
      return uint32_t(t.params.attention.num_splits) * uint32_t(t.refs[0].rows /
                                                                t.params.attention.num_splits);
    case TaskKind::kEmbedding:
    case TaskKind::kSample:
    case TaskKind::kRmsNormLinear:  // the linear kinds: above
    case TaskKind::kLinearResidual:
    case TaskKind::kRmsNormGateUpSilu:
    case TaskKind::kLmHead:
      return 0;
  }
  return 0;
}

// Which task paths a megakernel instantiation compiles. kGeneral runs every task graph.
// kBf16Decode runs the graphs whose every task bf16_decode_covers(), static mode without
// claimed rows: its loop holds no out-of-line call (the other weight types, batch > 1, claimed
// rows and the scalar attention passes are those calls), so the consumers' task environment
// is no longer in local memory and the loop spills less (docs/performance.md, twenty-first
// session: 5.1%, 8.3% and 12.6% shorter steps on Qwen3-8B, Llama-3.2-1B and Qwen3-0.6B).
enum class KernelPaths : uint32_t { kGeneral, kBf16Decode };

// The columns of one item of the bf16 product loop (linear_common.cuh, UNIT_COLS).
constexpr int BF16_ITEM_COLS = 256;
// The fewest rows of a weight tile the bf16 decode kernel multiplies: its one product path
// takes items of 4 rows (the last group of a tile may be shorter).
constexpr int BF16_DECODE_MIN_ROWS = 4;

// Whether task t takes only kBf16Decode's paths: a linear has one input row and its weight
// tiles are bf16 rows of whole items, 16-byte aligned, at least BF16_DECODE_MIN_ROWS of them
// (every real model's tiles: the kernel holds only the product loop they take, not the paths
// of 2 and 1 rows an item or of odd shapes, 2,300 of its instructions, docs/performance.md);
// attention reads bf16 caches through the vector pass (attention_vector_fits()). Refs as the
// launch has them (offsets absolute addresses) or relative to 16-byte aligned buffers, which
// gives the same answer.
MEGALITH_HOST_DEVICE inline bool bf16_decode_covers(const abi::TaskDesc& t) {
  const abi::LinearForm form = abi::linear_form(t.kind);
  if (form.weights > 0) {
    if (t.refs[0].rows != 1) return false;
    for (int i = 0; i < form.weights; ++i) {
      const abi::TensorRef& w = t.refs[form.weight[i]];
      // (Rows are contiguous in every weight tile: DeviceProgram rejects others first.)
      if (w.type != abi::RefType::kBF16 || w.offset % 16 != 0 || w.cols % BF16_ITEM_COLS != 0 ||
          w.rows < BF16_DECODE_MIN_ROWS) {
        return false;
      }
    }
    return true;
  }
  if (t.kind == abi::TaskKind::kAttentionPartial) {
    const abi::TensorRef& k = t.refs[7];
    const abi::TensorRef& v = t.refs[8];
    const int32_t hd = t.params.attention.head_dim;
    const uint64_t addresses = k.offset | v.offset | uint64_t(k.row_stride * 2) |
                               uint64_t(v.row_stride * 2);
    return k.type == abi::RefType::kBF16 && v.type == abi::RefType::kBF16 && hd % 8 == 0 &&
           hd * 2 <= ATTENTION_MAX_ROW_BYTES && addresses % 16 == 0;
  }
  return true;
}

}  // namespace megalith::kernels
