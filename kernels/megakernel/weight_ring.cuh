// The weight ring: the producer warp walks the worker's queue, step after step, and streams
// the weight tile of every linear task into a ring of shared-memory stages with
// cp.async.bulk, each completing on the stage's "full" mbarrier. Weights never depend on
// events, so the producer runs ahead of the consumers across task and step boundaries: the
// next task's weights are in flight while the consumers still wait for its inputs. Consumers
// take the chunks in the same order and free each stage on its "empty" mbarrier.
//
// Producer and consumers cut a task's weights into the same chunks: both call
// plan_chunks()/chunk_at() on the same descriptor.
//
//   abi::LinearForm form = abi::linear_form(task.kind);  // the refs streamed, in order
//   ChunkPlan plan = plan_chunks(task.refs[form.weight[0]]);
//   for (int c = 0; c < plan.num_chunks; ++c) {
//     const uint8_t* data = reader.wait(...) + chunk_skew(base, plan, chunk_at(plan, c));
//     ...
//     reader.release();
//   }
#pragma once

#include <stdint.h>

#include "common/sync.cuh"
#include "megakernel/layout.h"
#include "megakernel/watchdog.cuh"

namespace megalith::kernels {

// How one weight tile (rows of `cols` contiguous elements) is cut into chunks of up to
// rows_per_chunk rows x seg_cols columns; a chunk's row segments lie in its stage seg_cols
// apart. The rows of a tile whose rows start on 16 bytes are cut into as few equal segments
// (multiples of SEGMENT_ALIGN elements) as let 4 rows share a stage: a stage stays nearly
// full and the consumers' items span 4 rows whatever the row width (12288 columns: 4 rows x
// 4096). Other tiles take whole rows when one fits, else one row's segment a chunk, with
// room for the skew.
struct ChunkPlan {
  int32_t rows, cols, elem_bytes;
  int32_t rows_per_chunk;
  int32_t seg_cols;
  int32_t segs_per_row;
  int32_t num_chunks;
};
__device__ __forceinline__ ChunkPlan plan_chunks(const abi::TensorRef& w) {
  const int32_t eb = w.type == abi::RefType::kF32 ? 4 : 2;
  const int32_t row_bytes = w.cols * eb;
  const bool aligned = w.offset % 16 == 0 && row_bytes % 16 == 0;
  const int32_t payload = aligned ? STAGE_BYTES : CHUNK_PAYLOAD;
  int32_t seg = w.cols;
  if (aligned) {
    const int32_t want_rows = min(4, w.rows);
    for (int32_t k = 2; seg * eb * want_rows > payload && seg > SEGMENT_ALIGN; ++k) {
      seg = int32_t(align_up(uint32_t((w.cols + k - 1) / k), SEGMENT_ALIGN));
    }
  } else if (row_bytes > payload) {
    // As few segments as fit, of equal width (the last one shorter), not full ones and a sliver.
    const int32_t max_seg = payload / eb / SEGMENT_ALIGN * SEGMENT_ALIGN;
    const int32_t fewest = (w.cols + max_seg - 1) / max_seg;
    seg = int32_t(align_up(uint32_t((w.cols + fewest - 1) / fewest), SEGMENT_ALIGN));
  }
  const int32_t segs = (w.cols + seg - 1) / seg;
  // An unaligned tile's segment carries its own skew, so it travels alone.
  const int32_t per = !aligned && segs > 1 ? 1 : max(1, min(w.rows, payload / (seg * eb)));
  return {w.rows, w.cols, eb, per, seg, segs, (w.rows + per - 1) / per * segs};
}

struct Chunk {
  int32_t row0, rows, col0, cols;
};
__device__ __forceinline__ Chunk chunk_at(const ChunkPlan& p, int32_t c) {
  const int32_t row0 = c / p.segs_per_row * p.rows_per_chunk, col0 = c % p.segs_per_row * p.seg_cols;
  return {row0, min(p.rows_per_chunk, p.rows - row0), col0, min(p.seg_cols, p.cols - col0)};
}

// The chunk's first byte in global memory, and its offset inside the stage: the copy starts
// at the 16-byte boundary below it.
__device__ __forceinline__ const uint8_t* chunk_src(const uint8_t* tile, const ChunkPlan& p,
                                                    const Chunk& c) {
  return tile + (int64_t(c.row0) * p.cols + c.col0) * p.elem_bytes;
}
__device__ __forceinline__ uint32_t chunk_skew(const uint8_t* tile, const ChunkPlan& p,
                                               const Chunk& c) {
  return uint32_t(reinterpret_cast<uintptr_t>(chunk_src(tile, p, c)) & 15);
}

struct Ring {
  uint8_t* stages;  // num_stages * STAGE_BYTES
  uint64_t* full;   // arrivals: the producer's expect_tx; completes with the copy's bytes
  uint64_t* empty;  // arrivals: one per consumer warp, or per consumer thread
  int32_t* group;   // per stage: the claimed group it carries, or END_OF_CLAIMS
  volatile uint32_t* task_counts;  // the consumers' two counts (static mode), below
  uint32_t num_stages;
  bool per_warp_release;
  // The producer's PrefillHold, off in racecheck's runs (per-thread release): its flag guards
  // no data (the stages' barriers order every byte the consumers read), and racecheck reports
  // the flag's unsynchronized write and polls as hazards.
  bool hold_prefill;

  // Tasks the consumers have finished (signalled), and tasks whose input rows they have loaded.
  __device__ volatile uint32_t& finished_tasks() const { return task_counts[0]; }
  __device__ volatile uint32_t& loaded_tasks() const { return task_counts[1]; }
};

// A weight ref's first byte (its offset is an absolute address on the device).
__device__ __forceinline__ const uint8_t* tile_base(const abi::TensorRef& w) {
  return reinterpret_cast<const uint8_t*>(w.offset);
}

// Who fills a stage. sm_90: one thread issues a bulk copy that completes the stage's full
// barrier with its byte count. sm_80 (no bulk copies): the producer warp's 32 lanes copy
// 16-byte pieces with cp.async, and each lane's copies arrive on the full barrier as they
// land, so the barrier expects PRODUCER_LANES arrivals.
#if __CUDA_ARCH__ >= 900
constexpr int PRODUCER_LANES = 1;
#else
constexpr int PRODUCER_LANES = 32;
#endif

// Starts filling `stage` with `rows` runs of `bytes` 16-byte-aligned bytes, `src_stride` apart
// from `begin` in global memory and `dst_stride` apart in the stage.
__device__ __forceinline__ void fill_stage(const Ring& ring, uint32_t stage, uintptr_t begin,
                                           uint32_t bytes, int32_t rows, int64_t src_stride,
                                           uint32_t dst_stride, uint64_t policy) {
  uint8_t* dst = ring.stages + size_t(stage) * STAGE_BYTES;
#if __CUDA_ARCH__ >= 900
  mbarrier_arrive_expect_tx(&ring.full[stage], bytes * uint32_t(rows));
  for (int32_t r = 0; r < rows; ++r) {
    bulk_copy_g2s(dst + r * dst_stride, reinterpret_cast<const void*>(begin + r * src_stride), bytes,
                  &ring.full[stage], policy);
  }
#else
  for (int32_t r = 0; r < rows; ++r) {
    for (uint32_t i = threadIdx.x % 32 * 16; i < bytes; i += 32 * 16) {
      copy16_g2s(dst + r * dst_stride + i, reinterpret_cast<const void*>(begin + r * src_stride + i),
                 policy);
    }
  }
  copies_arrive(&ring.full[stage]);
#endif
}

// Lays the ring out in shared memory after the task scratch and initializes its barriers.
// Every thread of the block calls it: it ends with the block barrier.
__device__ inline Ring setup_ring(const MegakernelArgs& args, uint8_t* smem) {
  auto* full = reinterpret_cast<uint64_t*>(smem);
  auto* empty = full + MAX_STAGES;
  if (threadIdx.x == 0) {
    for (uint32_t s = 0; s < args.num_stages; ++s) {
      mbarrier_init(&full[s], PRODUCER_LANES);
      mbarrier_init(&empty[s], args.per_thread_release ? CONSUMER_THREADS : CONSUMER_WARPS);
    }
    reinterpret_cast<volatile uint32_t*>(smem + SMEM_DONE_OFFSET)[0] = 0;
    reinterpret_cast<volatile uint32_t*>(smem + SMEM_DONE_OFFSET)[1] = 0;
    fence_barrier_init();
  }
  __syncthreads();
  return {smem + megakernel_ring_offset(args.scratch_floats), full, empty,
          reinterpret_cast<int32_t*>(smem + SMEM_STAGE_GROUP_OFFSET),
          reinterpret_cast<volatile uint32_t*>(smem + SMEM_DONE_OFFSET), args.num_stages,
          args.per_thread_release == 0, args.per_thread_release == 0};
}

// sm_80: a stage completes only when all PRODUCER_LANES lanes have filled their parts, so the
// lanes leave a wait together; one that saw the abort while another saw the stage free would
// leave that stage a fill short, and drain_producer() waiting on it for ever.
__device__ __forceinline__ bool lanes_agree(bool ok) {
#if __CUDA_ARCH__ >= 900
  return ok;
#else
  return __all_sync(0xffffffffu, ok);
#endif
}

// Where the producer is in the ring.
struct ProducerState {
  uint32_t stage = 0, phase = 0;
  uint64_t issued = 0;  // chunks
};

// The producer's spin until `ready()`: the consumers may legitimately hold it up while they
// wait on an event for up to the watchdog's time, so it allows twice that. False when the
// launch was aborted or the time ran out (reported as a ring timeout).
template <class Ready>
__device__ __forceinline__ bool producer_wait(const MegakernelArgs& args, uint32_t task,
                                              int64_t step, Ready ready) {
  Spin spin(args, 2 * args.watchdog_ns, /*watch_abort=*/true);
  bool ok = true;
  while (!ready()) {
    const SpinState s = spin.poll();
    if (s == SpinState::kWaiting) continue;
    if (s == SpinState::kExpired) {
      report_fault(args, MegakernelFault::kRingTimeout, task, step, abi::kNoEvent, 0, 0);
    }
    ok = false;
    break;
  }
  return lanes_agree(ok);
}

// Waits until the consumers have freed the producer's next stage. False when the launch was
// aborted or they never freed it.
__device__ inline bool wait_free_stage(const MegakernelArgs& args, const Ring& ring,
                                       const ProducerState& p, uint32_t task, int64_t step) {
  return producer_wait(args, task, step,
                       [&] { return mbarrier_try_wait(&ring.empty[p.stage], p.phase ^ 1); });
}

// A task's tail (its output's stores, the release fence, the signal) waits behind the copies
// this SM has in flight: on an H100 the tails grew from 2.7 to 4.7 us with 5 ring stages
// instead of 3 (docs/performance.md, thirtieth session). So the producer issues at most
// PREFILL_BEFORE_TAIL chunks of a task before the consumers have finished the task whose
// weights it streamed before (`until`, counted by finished_tasks()); the rest of the prefill
// runs while the task waits for its events. Measured (H100, against no hold): 0 chunks -0.9%,
// +2.3%, +1.6% a step on Qwen3-8B, Llama-3.2-1B, Qwen3-0.6B; 1 chunk -2.0%, -2.1%, -5.1%;
// 2 chunks -1.9%, -3.0%, -0.7%.
constexpr int32_t PREFILL_BEFORE_TAIL = 1;
// Past PREFILL_BEFORE_INPUT chunks the producer also waits until the consumers have loaded
// the task's input rows (loaded_tasks()), whose loads otherwise queue behind the rest of the
// prefill. Measured (H200, against the hold above alone): 2 chunks -1.1%, -3.5%, -0.6% a step
// on Qwen3-8B, Llama-3.2-1B, Qwen3-0.6B; 1 chunk +0.6%, -2.2%, -1.6% (thirty-first session).
constexpr int32_t PREFILL_BEFORE_INPUT = 2;
// One chunk more also goes while the consumers wait for the events of the task before, once
// they have waited PREFILL_WAIT_NS: that task's tail is then an input and a stream away, time
// for the copy to land (by inference, a wait already that long is likelier to be a layer's
// attention than a phase's last tile). Measured (H100, against no early chunk): 1.5 us -0.1%,
// -0.6%, -0.5% a step on Qwen3-8B, Llama-3.2-1B, Qwen3-0.6B; at once (0 us) -0.1%, -0.7%,
// +1.5%: a short wait ends while the copy is still in flight (thirty-seventh session).
constexpr int32_t PREFILL_WHILE_WAITING = 1;
constexpr uint64_t PREFILL_WAIT_NS = 1500;
static_assert(PREFILL_BEFORE_TAIL + PREFILL_WHILE_WAITING <= PREFILL_BEFORE_INPUT,
              "the early chunks are among those the tail hold covers");
// While the producer holds a chunk back until the consumers load the task's input, the tile's
// bytes from that chunk on lie idle in HBM. Once the consumers have finished the task before
// and waited L2_AHEAD_WAIT_NS for this one's events (on Qwen3-8B, o_proj's for attention), the
// producer asks L2 for up to L2_AHEAD_BYTES of them, so that the ring's copies after the input
// find them there: on an H100 the consumers take a tile from L2 up to half again as fast as
// HBM's share of an SM (23 GB/s). Measured (H100, against none): 128 KB after 3.5 us -1.8%,
// -0.3%, -0.1% a step on Qwen3-8B, Llama-3.2-1B, Qwen3-0.6B; after 2 us -2.0%, +0.7%, +2.9%
// (shorter waits, Qwen3-0.6B's gate/up among them, end while the request is still in flight);
// 256 KB after 2 us +0.1%, +2.8%, +3.6%, as the requests slow attention's loads (thirty-ninth
// session). On an H200, where the consumers' cap is HBM's share, none is +0.8%, +0.2%, -0.4%
// and 192 KB -0.2%, +0.1%, -0.5% against it (fortieth session).
constexpr uint32_t L2_AHEAD_BYTES = 128 * 1024;
constexpr uint64_t L2_AHEAD_WAIT_NS = 3500;
// Nanoseconds since `since`, which the first call (with `since` at 0) sets to now.
__device__ __forceinline__ uint64_t waited_ns(uint64_t& since) {
  const uint64_t now = global_timer_ns();
  if (since == 0) since = now;
  return now - since;
}

struct PrefillHold {
  uint32_t until;  // finished_tasks() to wait for; 0: none
  uint32_t self;   // this task's number in the consumers' count
  int32_t issued;  // chunks of the task issued so far
  bool l2_asked = false;  // the bytes from the held chunk on went to L2
};

// The L2 request above, once the consumers have waited long enough: `begin` and `end` are the
// tile's bytes from the held chunk's start on (on a tile cut into row segments, some of them
// the chunks before already copied); `since`, when the producer first saw them waiting. No
// evict-first hint, unlike the ring's copies: the lines are to stay until the copies take them.
__device__ inline void ask_l2_ahead(const Ring& ring, PrefillHold& hold, uintptr_t begin,
                                    uintptr_t end, uint64_t& since) {
#if __CUDA_ARCH__ >= 900
  if (hold.l2_asked || ring.finished_tasks() + 1 < hold.self) return;
  if (waited_ns(since) < L2_AHEAD_WAIT_NS) return;
  hold.l2_asked = true;
  end = min(end, begin + L2_AHEAD_BYTES);
  bulk_prefetch_l2_range(begin, end);
#endif
}

// False when the launch was aborted or the consumers never finished the task before or never
// loaded this one's input rows.
// `begin` and `end`: the tile's bytes from the held chunk on (ask_l2_ahead).
__device__ inline bool wait_prefill_hold(const MegakernelArgs& args, const Ring& ring,
                                         PrefillHold& hold, uint32_t task, int64_t step,
                                         uintptr_t begin, uintptr_t end) {
  if (!ring.hold_prefill || hold.issued < PREFILL_BEFORE_TAIL) return true;
  if (hold.issued >= PREFILL_BEFORE_INPUT) {
    uint64_t since = 0;
    return producer_wait(args, task, step, [&] {
      if (ring.loaded_tasks() >= hold.self) return true;
      ask_l2_ahead(ring, hold, begin, end, since);
      return false;
    });
  }
  const bool early = hold.issued < PREFILL_BEFORE_TAIL + PREFILL_WHILE_WAITING;
  uint64_t since = 0;  // when the producer first saw the consumers waiting
  const auto waited_long = [&] {
    if (!early || ring.finished_tasks() + 1 < hold.until || ring.loaded_tasks() >= hold.until) {
      return false;
    }
    return waited_ns(since) >= PREFILL_WAIT_NS;
  };
  return producer_wait(args, task, step,
                       [&] { return ring.finished_tasks() >= hold.until || waited_long(); });
}

__device__ __forceinline__ void advance(const Ring& ring, ProducerState& p) {
  ++p.issued;
  if (++p.stage == ring.num_stages) {
    p.stage = 0;
    p.phase ^= 1;
  }
}

// Streams every chunk of `plan`, the plan of the weight tile at `tile`, into the ring, each
// once a stage is free, the stages marked with `group`.
__device__ inline bool stream_chunks(const MegakernelArgs& args, const Ring& ring,
                                     const uint8_t* tile, const ChunkPlan& plan, uint32_t task,
                                     int64_t step, uint64_t policy, ProducerState& p,
                                     int32_t group, PrefillHold* hold = nullptr) {
  // The tile's last 16-byte boundary: the end of what a held chunk's L2 request may cover.
  const uintptr_t tile_end =
      (reinterpret_cast<uintptr_t>(tile) + uintptr_t(plan.rows) * plan.cols * plan.elem_bytes) &
      ~uintptr_t(15);
  for (int32_t c = 0; c < plan.num_chunks; ++c) {
    const Chunk chunk = chunk_at(plan, c);
    const uint8_t* src = chunk_src(tile, plan, chunk);
    // Whole rows are one run; a block of row segments is a run per row.
    const bool whole_rows = plan.segs_per_row == 1;
    const int32_t runs = whole_rows ? 1 : chunk.rows;
    const uint32_t bytes = uint32_t(((whole_rows ? chunk.rows - 1 : 0) * plan.cols + chunk.cols) *
                                    plan.elem_bytes);
    const uintptr_t begin = reinterpret_cast<uintptr_t>(src) & ~uintptr_t(15);
    const uintptr_t end = (reinterpret_cast<uintptr_t>(src) + bytes + 15) & ~uintptr_t(15);
    if (hold != nullptr) {
      if (!wait_prefill_hold(args, ring, *hold, task, step, begin, tile_end)) return false;
      ++hold->issued;
    }
    if (!wait_free_stage(args, ring, p, task, step)) return false;
    if (threadIdx.x % 32 == 0) ring.group[p.stage] = group;
#if __CUDA_ARCH__ < 900
    __threadfence_block();  // the id before the copies whose arrivals complete the stage
#endif
    fill_stage(ring, p.stage, begin, uint32_t(end - begin), runs,
               int64_t(plan.cols) * plan.elem_bytes, uint32_t(plan.seg_cols * plan.elem_bytes),
               policy);
    advance(ring, p);
  }
  return true;
}
__device__ __forceinline__ bool stream_tile(const MegakernelArgs& args, const Ring& ring,
                                            const abi::TensorRef& w, uint32_t task, int64_t step,
                                            uint64_t policy, ProducerState& p, int32_t group,
                                            PrefillHold* hold = nullptr) {
  return stream_chunks(args, ring, tile_base(w), plan_chunks(w), task, step, policy, p, group,
                       hold);
}

// Streams every chunk of the weights of `t` (task `task` at `step`) into the ring. False when
// the launch was aborted or the consumers never freed a stage.
__device__ inline bool stream_task_weights(const MegakernelArgs& args, const Ring& ring,
                                           const abi::TaskDesc& t, uint32_t task, int64_t step,
                                           uint64_t policy, ProducerState& p,
                                           PrefillHold* hold = nullptr) {
  const abi::LinearForm form = abi::linear_form(t.kind);
  for (int part = 0; part < form.weights; ++part) {
    if (!stream_tile(args, ring, t.refs[form.weight[part]], task, step, policy, p, 0, hold)) {
      return false;
    }
  }
  return true;
}

// Whether the task claims its rows in this launch (compiler/claimed_rows.h); never on the
// kBf16Decode paths, whose launches have no claimed ops.
template <KernelPaths P = KernelPaths::kGeneral>
__device__ __forceinline__ bool claims_rows(const MegakernelArgs& args, const abi::TaskDesc& t) {
  if constexpr (P == KernelPaths::kBf16Decode) return false;
  return args.claims.counters != nullptr && abi::claims_rows(t.kind, t.params);
}

// Which part of a claimed op a group belongs to and which of its rows the group holds: the
// producer's and the consumers' common lookup.
struct ClaimGroups {
  int32_t first[MAX_CLAIM_PARTS], rows[MAX_CLAIM_PARTS];  // per part: first group, rows
  int32_t group_rows;

  __device__ explicit ClaimGroups(const ClaimOp& op) : group_rows(op.group_rows) {
#pragma unroll
    for (int p = 0; p < MAX_CLAIM_PARTS; ++p) {
      first[p] = p < op.num_parts ? op.parts[p].first_group : 0x7fffffff;
      rows[p] = p < op.num_parts ? op.parts[p].weight.rows : 0;
    }
  }
  __device__ __forceinline__ int part(int32_t g) const {
    return g >= first[2] ? 2 : g >= first[1] ? 1 : 0;
  }
  // The first row of group g (of part p) in its part, and how many rows it has.
  __device__ __forceinline__ int32_t row0(int p, int32_t g) const {
    return (g - first[p]) * group_rows;
  }
  __device__ __forceinline__ int32_t size(int p, int32_t g) const {
    return min(group_rows, rows[p] - row0(p, g));
  }
};

// Where a claimed op's groups lie, loaded once per task so that a claim costs no loads but
// its own: the groups, and each part's weight addresses (the up weight's: 0 when the op has
// none).
struct ClaimMap {
  ClaimGroups groups;
  uint64_t weight[MAX_CLAIM_PARTS], up_weight[MAX_CLAIM_PARTS];
  abi::TensorRef shape;  // the weights' type, columns and stride (the same for every part)
  int32_t total, capacity;

  __device__ explicit ClaimMap(const ClaimOp& op) : groups(op) {
#pragma unroll
    for (int p = 0; p < MAX_CLAIM_PARTS; ++p) {
      const bool present = p < op.num_parts;
      weight[p] = present ? op.parts[p].weight.offset : 0;
      up_weight[p] = present && op.parts[p].up_weight.buffer != abi::kNoBuffer
                         ? op.parts[p].up_weight.offset
                         : 0;
    }
    shape = op.parts[0].weight;
    total = op.total_groups;
    capacity = op.capacity;
  }
  // The rows of group g of weight `at` (weight[p] or up_weight[p]), as a tile.
  __device__ __forceinline__ abi::TensorRef tile(int p, uint64_t at, int32_t g) const {
    abi::TensorRef w = shape;
    w.offset = at + uint64_t(groups.row0(p, g)) * uint64_t(w.row_stride) *
                        (w.type == abi::RefType::kF32 ? 4 : 2);
    w.rows = groups.size(p, g);
    return w;
  }
  // The chunk plan of every full group: the host checked that claimed weights are aligned
  // rows of one type and width, so only the last group of a part, when shorter, needs its own.
  __device__ __forceinline__ ChunkPlan full_group_plan() const {
    abi::TensorRef w = shape;
    w.offset = weight[0];
    w.rows = groups.group_rows;
    return plan_chunks(w);
  }
};

// One claim: the next group of the op's counter. sm_80's producer lanes all stream, so lane 0
// claims for the warp.
__device__ __forceinline__ int32_t claim_group(uint32_t* counter) {
#if __CUDA_ARCH__ >= 900
  return int32_t(atomicAdd(counter, 1u));
#else
  const uint32_t g = threadIdx.x % 32 == 0 ? atomicAdd(counter, 1u) : 0u;
  return int32_t(__shfl_sync(0xffffffffu, g, 0));
#endif
}

// Waits until step `step - 1` has sampled: its sample task reset the claim counters once every
// claim of its step was made.
__device__ inline bool wait_claims_reset(const MegakernelArgs& args, uint32_t task, int64_t step) {
  // The producer may wait on the sink as long as a task waits on an event, and its consumers'
  // wait besides: twice the watchdog's time, as for a free stage.
  return lanes_agree(wait_target(args, args.claims.step_end, step, task, 2 * args.watchdog_ns));
}

// A claimed task's weights: groups claimed from the op's counter until the groups run out or
// the task holds its capacity, each streamed as its part's rows (gate rows, then up rows), then
// a stage without bytes marked END_OF_CLAIMS. Two claims are in flight ahead of the group
// streaming, so their latency (an atomic at L2, behind the weight traffic) hides behind the
// groups' copies (one, two or four measured alike, docs/performance.md); claims come back in
// the counter's order, so the first one past the end ends the task. `reset_step`: the last
// step whose counter reset this producer has seen.
__device__ inline bool stream_claimed_groups(const MegakernelArgs& args, const Ring& ring,
                                             const abi::TaskDesc& t, uint32_t task, int64_t step,
                                             uint64_t policy, ProducerState& p,
                                             int64_t& reset_step) {
  if (step > reset_step) {
    if (!wait_claims_reset(args, task, step)) return false;
    reset_step = step;
  }
  const ClaimMap map(args.claims.ops[t.params.linear.claim_op]);
  const ChunkPlan full = map.full_group_plan();
  uint32_t* counter = args.claims.counters + t.params.linear.claim_op;
  int32_t claimed = 0;
  // The next group of the counter; map.total once the task holds its capacity.
  const auto claim = [&] {
    return claimed < map.capacity ? (++claimed, claim_group(counter)) : map.total;
  };
  int32_t g = claim(), next = claim();
  while (g < map.total) {
    const int32_t later = claim();  // in flight while g streams
    const int part = map.groups.part(g);
    const uint64_t weights[2] = {map.weight[part], map.up_weight[part]};  // up: 0 when none
    for (int k = 0; k < 2 && weights[k] != 0; ++k) {
      const abi::TensorRef w = map.tile(part, weights[k], g);
      // Once per task, not per group: a plan costs integer divisions (a tenth of the claimed
      // run's samples when every group had its own).
      if (!stream_chunks(args, ring, tile_base(w), w.rows == full.rows ? full : plan_chunks(w),
                         task, step, policy, p, g)) {
        return false;
      }
    }
    g = next;
    next = later;
  }
  if (!wait_free_stage(args, ring, p, task, step)) return false;
  if (threadIdx.x % 32 == 0) ring.group[p.stage] = END_OF_CLAIMS;
  mbarrier_arrive(&ring.full[p.stage]);  // every producer lane: the barrier's count
  advance(ring, p);
  return true;
}

// Before the producer leaves an aborted launch: the copies still in flight write this CTA's
// shared memory, so they land first.
__device__ inline void drain_producer(const Ring& ring, const ProducerState& p) {
  const uint64_t outstanding = p.issued < ring.num_stages ? p.issued : ring.num_stages;
  for (uint64_t k = p.issued - outstanding; k < p.issued; ++k) {
    while (!mbarrier_try_wait(&ring.full[k % ring.num_stages], uint32_t(k / ring.num_stages) & 1)) {
    }
  }
}

// The producer, static mode: PRODUCER_LANES threads of the producer warp stream every chunk
// of the worker's queue, in queue order, for the launch's steps.
template <KernelPaths P = KernelPaths::kGeneral>
__device__ inline void run_producer(const MegakernelArgs& args, const Ring& ring) {
  const uint32_t q_begin = args.queue_begin[blockIdx.x], q_end = args.queue_begin[blockIdx.x + 1];
  const uint64_t policy = l2_evict_first_policy();
  ProducerState p;
  int64_t reset_step = args.first_step - 1;
  // Tasks of the queue so far (the consumers' finished_tasks() count), and the last one that
  // streamed weights.
  uint32_t tasks = 0, last_streamed = 0;
  for (int64_t step = args.first_step; step < args.end_step; ++step) {
    for (uint32_t q = q_begin; q < q_end; ++q) {
      const QueueEntry& e = args.entries[q];
      ++tasks;
      PrefillHold hold{last_streamed, tasks, 0};
      const bool ok =
          claims_rows<P>(args, e.task)
              ? stream_claimed_groups(args, ring, e.task, e.task_index, step, policy, p, reset_step)
              : stream_task_weights(args, ring, e.task, e.task_index, step, policy, p, &hold);
      if (abi::linear_form(e.task.kind).weights > 0) last_streamed = tasks;
      if (!ok) {
        drain_producer(ring, p);
        return;
      }
    }
  }
}

// A consumer thread's position in the ring; every consumer thread keeps its own copy and all
// of them walk the same chunks.
class RingReader {
 public:
  __device__ explicit RingReader(const Ring& ring) : ring_(ring) {}

  // The next chunk's stage once its bytes have landed; nullptr when the watchdog fired.
  __device__ const uint8_t* wait(const MegakernelArgs& args, uint32_t task, int64_t step) {
    // Every consumer thread waits on the same phase, so all of them pass or all time out:
    // the decision stays uniform across the block without a barrier. A chunk already there
    // costs no load of the watchdog's setting.
    const uint8_t* stage = ring_.stages + size_t(stage_) * STAGE_BYTES;
    if (mbarrier_try_wait(&ring_.full[stage_], phase_)) return stage;
    Spin spin(args, args.watchdog_ns, /*watch_abort=*/false);
    while (!mbarrier_try_wait(&ring_.full[stage_], phase_)) {
      if (spin.poll() == SpinState::kExpired) {
        report_fault(args, MegakernelFault::kRingTimeout, task, step, abi::kNoEvent, 0, 0);
        return nullptr;
      }
    }
    return stage;
  }

  // The whole ring, for a worker whose producer streams nothing (AttentionParams::stage_cache).
  __device__ uint8_t* idle_bytes() const { return ring_.stages; }
  __device__ uint32_t idle_capacity() const { return ring_.num_stages * STAGE_BYTES; }

  // The consumers are done with a task, its signal included: every consumer thread calls it,
  // and thread 0 tells the producer (PrefillHold), which streams only a task's first chunks
  // until the task before has finished.
  __device__ void task_finished() {
    ++finished_;
    if (ring_.hold_prefill && threadIdx.x == 0) ring_.finished_tasks() = finished_;
  }

  // The consumers have loaded the current task's input rows (PrefillHold).
  __device__ void input_loaded() {
    if (ring_.hold_prefill && threadIdx.x == 0) ring_.loaded_tasks() = finished_ + 1;
  }

  // The claimed group the current stage carries (once wait() returned it).
  __device__ int32_t group() const { return ring_.group[stage_]; }

  // The calling thread is done reading the current stage. With per-warp release, lane 0
  // arrives for its warp after __syncwarp(), which orders the other lanes' reads before it
  // (the CUDA programming guide's guarantee for __syncwarp); with per-thread release every
  // consumer thread arrives for its own reads, which compute-sanitizer's racecheck can follow
  // (it does not credit the warp barrier) at the price of 32 times the arrivals.
  __device__ void release() {
    if (ring_.per_warp_release) {
      __syncwarp();
      if (threadIdx.x % 32 == 0) mbarrier_arrive(&ring_.empty[stage_]);
    } else {
      mbarrier_arrive(&ring_.empty[stage_]);
    }
    if (++stage_ == ring_.num_stages) {
      stage_ = 0;
      phase_ ^= 1;
    }
  }

 private:
  Ring ring_;
  uint32_t stage_ = 0, phase_ = 0, finished_ = 0;
};

}  // namespace megalith::kernels
