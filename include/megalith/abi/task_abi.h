// The task ABI: the plain-data descriptors the compiler writes and both executors (the CPU
// threads and the CUDA megakernel) read. This header and tasks.def are the only ones g++ and
// nvcc both compile, so they use fixed-width types and no standard library.
//
//   const TaskDesc& t = graph.tasks[i];
//   const TensorRef& x = t.refs[0];                      // meaning per kind: tasks.def
//   float eps = t.params.linear.eps;
//   for (uint32_t w = t.wait_begin; w < t.wait_begin + t.wait_count; ++w) wait(graph.waits[w]);
#pragma once

#include <stdint.h>

#if defined(__CUDACC__)
#define MEGALITH_HOST_DEVICE __host__ __device__
#else
#define MEGALITH_HOST_DEVICE
#endif

namespace megalith::abi {

enum class TaskKind : uint16_t {
#define MEGALITH_TASK(Name, snake, refs) k##Name,
#include "megalith/abi/tasks.def"
#undef MEGALITH_TASK
};
inline constexpr int kNumTaskKinds = 0
#define MEGALITH_TASK(Name, snake, refs) +1
#include "megalith/abi/tasks.def"
#undef MEGALITH_TASK
    ;

inline constexpr uint32_t kNoBuffer = 0xffffffffu;
inline constexpr uint32_t kNoEvent = 0xffffffffu;
inline constexpr int kMaxTaskRefs = 12;

// Element types, numbered as megalith::ElemType.
enum class RefType : uint8_t { kF32 = 0, kBF16 = 1, kF16 = 2, kI32 = 3 };
enum class RefAccess : uint8_t { kRead = 0, kWrite = 1, kReadWrite = 2 };

// A 2-D window of a buffer: `rows` rows of `cols` elements, `row_stride` elements apart,
// starting `offset` bytes into the buffer. It is exactly what the task may touch; the
// dependency analysis and the verifier reason about these windows.
struct TensorRef {
  uint32_t buffer = kNoBuffer;
  RefType type = RefType::kF32;
  RefAccess access = RefAccess::kRead;
  uint16_t reserved = 0;
  uint64_t offset = 0;
  int32_t rows = 0;
  int32_t cols = 0;
  int64_t row_stride = 0;
};

// Per-kind parameters (the rest of the shape information is in the refs).
struct LinearParams {  // RmsNormLinear, LinearResidual, RmsNormGateUpSilu, LmHead
  float eps;           // rms_norm epsilon
  int32_t tile;        // LmHead: index of this tile among the partials
  int32_t row_begin;   // LmHead: first vocabulary row of the tile
  // Claimed rows (RmsNormLinear, LinearResidual, RmsNormGateUpSilu; 0: off). The megakernel's
  // static mode then deals the op's rows out at run time: each task of the op claims groups
  // of claim_rows rows of any of the op's tiles from a counter (claim_op's), at most
  // claim_capacity groups, so a slow worker computes fewer rows. The refs still name the
  // task's own tile, which the other executors compute; the op's tiles together are what
  // any of its tasks may write (compiler/claimed_rows.h).
  int32_t claim_rows;
  int32_t claim_capacity;
  int32_t claim_op;    // dense index over the claimed ops of the graph
};
struct AttentionParams {  // AttentionPartial, AttentionMerge
  float scale;
  int32_t head_dim;
  int32_t group;
  int32_t split;       // AttentionPartial: which slice of the cache
  int32_t num_splits;
  float eps;           // AttentionPartial: the per-head RMS norm's epsilon
  // AttentionPartial, single split: 1 when its worker runs no task with weights, so the task
  // may copy the cache rows it will read into the idle weight ring before its events fire.
  int32_t stage_cache;
};
struct SampleParams {  // Sample
  int32_t num_tiles;
  int32_t vocab;
};
// Seven words, the largest kind's (attention's), so that with TaskDesc::second_signal the
// descriptor and the megakernel's queue entry keep the sizes they were measured with (440 and
// 512 bytes; with 448 and 528 Qwen3-0.6B ran 1.4% slower, docs/performance.md).
union TaskParams {
  LinearParams linear;
  AttentionParams attention;
  SampleParams sample;
  uint32_t words[7];
};
static_assert(sizeof(TaskParams) == 28, "TaskParams: seven words");

// The linear kinds multiply the input row x (ref 0; one per slot) with weight tiles that
// stream through the ring: which refs those are, in stream order (gate/up: the gate tile,
// then the up tile), and whether x is RMS-normalized with the norm weight of ref 1 first.
// Every other kind has no weights (`weights` 0).
struct LinearForm {
  int32_t weights;
  int32_t weight[2];
  bool norm;
};
inline MEGALITH_HOST_DEVICE LinearForm linear_form(TaskKind kind) {
  switch (kind) {
    case TaskKind::kRmsNormLinear:
    case TaskKind::kLmHead: return {1, {2, -1}, true};
    case TaskKind::kLinearResidual: return {1, {1, -1}, false};
    case TaskKind::kRmsNormGateUpSilu: return {2, {2, 3}, true};
    default: return {0, {-1, -1}, false};
  }
}

// Whether a task of `kind` with `params` claims its rows (LinearParams::claim_rows): the
// compiler, the verifier, the host's shared-memory sizing and the megakernel all ask this.
inline MEGALITH_HOST_DEVICE bool claims_rows(TaskKind kind, const TaskParams& params) {
  return (kind == TaskKind::kRmsNormLinear || kind == TaskKind::kLinearResidual ||
          kind == TaskKind::kRmsNormGateUpSilu) &&
         params.linear.claim_rows > 0;
}

struct TaskDesc {
  TaskKind kind = TaskKind::kEmbedding;
  uint16_t num_refs = 0;
  uint32_t op = 0;          // the fused op it belongs to (inspect, profiling)
  uint32_t worker = 0;      // static mode: the worker whose queue holds it
  uint32_t wait_begin = 0;  // waits[wait_begin, wait_begin + wait_count)
  uint32_t wait_count = 0;
  uint32_t signal = kNoEvent;  // the event it increments when done
  // A second one, or kNoEvent: a producer whose consumers are those of two other events (a
  // tile straddling two attention groups) increments both, so each consumer waits on one.
  uint32_t second_signal = kNoEvent;
  TaskParams params = {};
  TensorRef refs[kMaxTaskRefs] = {};
};
static_assert(sizeof(TaskDesc) == 440, "TaskDesc: the size the megakernel was measured with");

// A task at step s waiting on `event` proceeds once
//   counter[event] >= triggers[event] * (s + 1 - step_offset).
// Offset 0 waits for this step's producers, offset 1 for the previous step's.
struct EventWait {
  uint32_t event = 0;
  uint32_t step_offset = 0;
};

struct EventDesc {
  uint32_t triggers = 0;        // producer tasks per step
  uint32_t consumer_begin = 0;  // consumers[consumer_begin, +consumer_count): dynamic mode
  uint32_t consumer_count = 0;
};

// One dependent task of an event, for the dynamic scheduler.
struct EventConsumer {
  uint32_t task = 0;
  uint32_t step_offset = 0;
};

// The control block of one slot, which the host fills before a launch (buffer "control", a
// row per slot).
struct StepControl {
  int32_t first_step;   // global step at which the slot's sequence began (its position 0)
  int32_t num_prompt;   // prompt tokens; positions below it take the prompt's token
  float temperature;    // 0: greedy
  uint32_t seed_lo, seed_hi;
  int32_t active;       // 0: no sequence; the slot computes token 0 at position 0, unread
  int32_t reserved[2];
};

// The position a slot computes at global step `step`.
inline MEGALITH_HOST_DEVICE int32_t slot_position(const StepControl& c, int64_t step) {
  return c.active ? int32_t(step - c.first_step) : 0;
}

// One lm_head tile's summary of one slot's row (buffer "lm_partials": a row per tile, a
// record per slot).
struct LmPartial {
  float max_logit;
  int32_t argmax;
  float sum_exp;      // sum of exp(logit - max_logit) over the tile
  float sample_key;   // max over the tile of logit / temperature + Gumbel noise
  int32_t sample_id;
  int32_t reserved;
};

// The uniform in (0, 1) behind the Gumbel noise of token `id` at sequence position
// `position`: a pure function of its arguments (splitmix64 finalizer), so every executor
// samples the same token for the same seed.
inline MEGALITH_HOST_DEVICE double sampling_uniform(uint64_t seed, int32_t position, int32_t id) {
  uint64_t z = seed ^ (uint64_t(uint32_t(position)) << 32 | uint32_t(id));
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return (double(z >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

}  // namespace megalith::abi
