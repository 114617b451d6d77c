#include "device_program.h"

#include "cuda_status.h"

#include <cuda_runtime.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "fill/random_weights.h"
#include "megakernel/launch.h"

namespace megalith::cuda {

namespace {

using abi::TaskKind;
using kernels::MegakernelFault;

constexpr uint64_t kArenaAlignment = 256;
constexpr uint64_t kStagingBytes = uint64_t(32) << 20;
constexpr uint64_t kDirectCopyBytes = uint64_t(1) << 20;  // smaller writes skip the staging
// Static shared memory of the kernel and the runtime's reserve, outside the dynamic plan.
constexpr uint64_t kSharedMemorySlack = 1024;

uint64_t aligned(uint64_t v) { return (v + kArenaAlignment - 1) / kArenaAlignment * kArenaAlignment; }

// Kernel-per-op mode: the CTAs of an op's launch, one per task up to one per worker.
uint32_t op_ctas(const FusedOpInfo& op, int32_t workers) {
  return std::min<uint32_t>(op.task_count, uint32_t(workers));
}

bool is_float_type(abi::RefType t) { return t != abi::RefType::kI32; }

}  // namespace

// Everything allocated through CUDA, released in the destructor.
struct DeviceProgram::Device {
  cudaStream_t stream = nullptr;
  uint8_t* arena = nullptr;  // every buffer
  uint8_t* meta = nullptr;   // descriptors, counters, error record
  void* staging[2] = {nullptr, nullptr};
  cudaEvent_t staged[2] = {nullptr, nullptr};
  // Host-mapped: the count of published positions, then one record per position.
  void* published = nullptr;
  // Dynamic mode's logs and counts for the longest launch so far (DynamicArgs).
  uint8_t* logs = nullptr;
  uint64_t log_steps = 0;
  // Kernel-per-op mode: one step's launches, replayed per step; the step they read.
  cudaGraphExec_t op_graph = nullptr;
  int64_t* device_step = nullptr;
  kernels::MegakernelArgs args{};

  ~Device() {
    if (stream) cudaStreamSynchronize(stream);
    for (int i = 0; i < 2; ++i) {
      if (staged[i]) cudaEventDestroy(staged[i]);
      if (staging[i]) cudaFreeHost(staging[i]);
    }
    if (op_graph) cudaGraphExecDestroy(op_graph);
    if (published) cudaFreeHost(published);
    if (logs) cudaFree(logs);
    if (arena) cudaFree(arena);
    if (meta) cudaFree(meta);
    if (stream) cudaStreamDestroy(stream);
  }
};

DeviceProgram::DeviceProgram(const TaskGraph& tg, const DeviceProgramOptions& options)
    : tg_(tg), options_(options), dev_(std::make_unique<Device>()) {}

DeviceProgram::~DeviceProgram() = default;

StatusOr<std::unique_ptr<DeviceProgram>> DeviceProgram::create(const TaskGraph& tg,
                                                               const DeviceProgramOptions& options) {
  if (!(options.watchdog_timeout_s >= 0)) {
    return invalid_argument("the watchdog timeout must not be negative");
  }
  std::unique_ptr<DeviceProgram> program(new DeviceProgram(tg, options));
  int devices = 0;
  const cudaError_t e = cudaGetDeviceCount(&devices);
  if (e != cudaSuccess || devices == 0) {
    return Status(StatusCode::kUnimplemented,
                  fmt::format("no CUDA device is available ({})",
                              e == cudaSuccess ? "none found" : cudaGetErrorString(e)));
  }
  if (options.device < 0 || options.device >= devices) {
    return invalid_argument("CUDA device {} does not exist ({} found)", options.device, devices);
  }
  MEGALITH_CUDA_RETURN_IF_ERROR(cudaSetDevice(options.device));
  MEGALITH_RETURN_IF_ERROR(program->validate_and_plan());
  MEGALITH_RETURN_IF_ERROR(program->allocate_and_upload());
  return program;
}

// An attention task that stages its cache rows in the weight ring (AttentionParams::
// stage_cache) needs the ring idle: no task of its worker may stream weights.
Status DeviceProgram::check_cache_staging() const {
  const TaskGraph& tg = tg_;
  for (int32_t w = 0; w < tg.num_workers; ++w) {
    int64_t staging = -1, streaming = -1;
    for (uint32_t q = tg.queue_begin[size_t(w)]; q < tg.queue_begin[size_t(w) + 1]; ++q) {
      const abi::TaskDesc& t = tg.tasks[tg.queue_tasks[q]];
      if (t.kind == TaskKind::kAttentionPartial && t.params.attention.stage_cache != 0) {
        staging = tg.queue_tasks[q];
      }
      if (abi::linear_form(t.kind).weights > 0) streaming = tg.queue_tasks[q];
    }
    if (staging >= 0 && streaming >= 0) {
      return invalid_argument("worker {}: attention task {} stages the KV cache in the weight "
                              "ring, which task {} streams weights through", w, staging, streaming);
    }
  }
  return {};
}

// Checks every task against what the kernels handle, and sizes shared memory: the largest
// task scratch, then as many ring stages as fit.
Status DeviceProgram::validate_and_plan() {
  const TaskGraph& tg = tg_;
  if (tg.num_workers < 1) return invalid_argument("the task graph has no workers");
  if (options_.dynamic && options_.kernel_per_op) {
    return invalid_argument("dynamic mode and kernel-per-op mode exclude each other");
  }
  if (tg.queue_begin.size() != size_t(tg.num_workers) + 1 ||
      tg.queue_begin.back() != tg.queue_tasks.size()) {
    return invalid_argument("the task graph's queues do not match its {} workers", tg.num_workers);
  }
  for (uint32_t t : tg.queue_tasks) {
    if (t >= tg.tasks.size()) return invalid_argument("a queue names task {}, which does not exist", t);
  }
  auto where = [&](uint32_t i) {
    const abi::TaskDesc& d = tg.tasks[i];
    return fmt::format("task {} ({} of '{}')", i, task_kind_name(d.kind),
                       d.op < tg.ops.size() ? tg.ops[d.op].name : std::string("?"));
  };
  for (uint32_t i = 0; i < tg.tasks.size(); ++i) {
    const abi::TaskDesc& t = tg.tasks[i];
    if (options_.dynamic && t.wait_count == 0) {
      // Its scheduler would never see it again after the first step.
      return unimplemented("dynamic mode: {} waits on no event", where(i));
    }
    if (uint16_t(t.kind) >= abi::kNumTaskKinds) {
      return invalid_argument("task {} has unknown kind {}", i, uint16_t(t.kind));
    }
    for (const abi::TensorRef& r : t.refs) {
      if (r.buffer != abi::kNoBuffer && r.buffer >= tg.buffers.size()) {
        return invalid_argument("{} refers to buffer {}, which does not exist", where(i), r.buffer);
      }
    }
    for (const uint32_t e : {t.signal, t.second_signal}) {
      if (e != abi::kNoEvent && e >= tg.events.size()) {
        return invalid_argument("{} signals event {}, which does not exist", where(i), e);
      }
    }
    if (t.second_signal != abi::kNoEvent && (t.signal == abi::kNoEvent || t.second_signal == t.signal)) {
      return invalid_argument("{} has a second signal without a distinct first", where(i));
    }
    if (uint64_t(t.wait_begin) + t.wait_count > tg.waits.size()) {
      return invalid_argument("{} has waits beyond the wait list", where(i));
    }
    for (uint32_t w = 0; w < t.wait_count; ++w) {
      if (tg.waits[t.wait_begin + w].event >= tg.events.size()) {
        return invalid_argument("{} waits on an event that does not exist", where(i));
      }
    }
    const abi::LinearForm form = abi::linear_form(t.kind);
    const int x_ref = 0;
    switch (t.kind) {
      case TaskKind::kAttentionPartial:
      case TaskKind::kAttentionMerge: {
        // Both handle one token: the query's row, the merged output's.
        const abi::AttentionParams& a = t.params.attention;
        const int32_t tokens = t.refs[t.kind == TaskKind::kAttentionPartial ? 0 : 2].rows;
        if (a.head_dim < 2 || a.head_dim > kernels::MAX_HEAD_DIM || a.head_dim % 2 != 0 ||
            a.num_splits < 1 || tokens != 1) {
          return unimplemented("{}: head_dim {} (an even number up to {}), {} splits, {} tokens "
                               "(one a step)", where(i), a.head_dim, kernels::MAX_HEAD_DIM,
                               a.num_splits, tokens);
        }
        break;
      }
      default: break;
    }
    if (form.weights > 0) {
      if (t.refs[x_ref].type != abi::RefType::kF32) {
        return unimplemented("{}: its input must be f32 activations", where(i));
      }
      if (t.refs[x_ref].rows != tg.batch) {
        return unimplemented("{}: a linear takes one input row per slot ({}), the task has {}",
                             where(i), tg.batch, t.refs[x_ref].rows);
      }
      for (int part = 0; part < form.weights; ++part) {
        const int w = form.weight[part];
        const abi::TensorRef& r = t.refs[w];
        if (r.buffer == abi::kNoBuffer || !is_float_type(r.type) || r.rows < 1 || r.cols < 1 ||
            r.row_stride != r.cols) {
          return unimplemented("{}: its weight tile must be whole float rows", where(i));
        }
      }
      // run_linear keeps the tiles' products side by side (gate/up: the same rows each).
      if (form.weights == 2 && t.refs[form.weight[1]].rows != t.refs[form.weight[0]].rows) {
        return unimplemented("{}: its two weight tiles have {} and {} rows, not the same",
                             where(i), t.refs[form.weight[0]].rows, t.refs[form.weight[1]].rows);
      }
    }
    scratch_floats_ = std::max(scratch_floats_, kernels::task_scratch_floats(t));
  }
  MEGALITH_RETURN_IF_ERROR(check_cache_staging());
  if (options_.claim_rows && !options_.dynamic && !options_.kernel_per_op) {
    MEGALITH_ASSIGN_OR_RETURN(claimed_, claimed_ops(tg));
    if (!claimed_.empty() && tg.batch > 1) {
      return unimplemented("claimed rows take batch 1; this task graph has batch {}", tg.batch);
    }
    for (const ClaimedOp& c : claimed_) {
      for (const ClaimedPart& part : c.parts) {
        for (const abi::TensorRef* w : {&part.weight, &part.up_weight}) {
          if (w == &part.up_weight && c.kind != TaskKind::kRmsNormGateUpSilu) continue;
          // The claimed path multiplies whole items only (linear_common.cuh).
          if (!is_float_type(w->type) || w->cols % 256 != 0 || w->row_stride != w->cols ||
              w->offset % 16 != 0 || w->type != c.parts[0].weight.type ||
              w->cols != c.parts[0].weight.cols) {
            return unimplemented("claimed op '{}': its weights must be float rows of one type "
                                 "and a multiple of 256 columns", tg.ops[c.op].name);
          }
        }
      }
    }
  }

  // The kernel compiled for bf16 decode alone where it covers the graph (its tasks, static
  // mode, no claimed rows); the buffers start on kArenaAlignment, so the refs' relative
  // offsets give bf16_decode_covers() the alignment the launch's addresses will have.
  static_assert(kArenaAlignment % 16 == 0);
  const bool bf16_decode =
      !options_.general_paths && !options_.dynamic && claimed_.empty() &&
      std::all_of(tg.tasks.begin(), tg.tasks.end(), kernels::bf16_decode_covers);
  paths_ = bf16_decode ? kernels::KernelPaths::kBf16Decode : kernels::KernelPaths::kGeneral;

  int limit = 0;
  MEGALITH_CUDA_RETURN_IF_ERROR(
      cudaDeviceGetAttribute(&limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, options_.device));
  const uint64_t fixed = kernels::megakernel_ring_offset(scratch_floats_) + kSharedMemorySlack;
  const uint64_t room = uint64_t(limit) > fixed ? uint64_t(limit) - fixed : 0;
  const uint64_t most = options_.max_stages > 0 ? std::min<uint64_t>(options_.max_stages,
                                                                      kernels::MAX_STAGES)
                                                 : kernels::DEFAULT_STAGES;
  num_stages_ = uint32_t(std::min<uint64_t>(most, room / kernels::STAGE_BYTES));
  if (num_stages_ < uint32_t(kernels::MIN_STAGES)) {
    return unimplemented("the largest task needs {} bytes of shared memory besides the weight "
                         "ring; the GPU has {} per block{}", fixed, limit,
                         tg.batch > 1 ? fmt::format(" (batch {}: every slot's input row is "
                                                    "there; a smaller batch needs less)", tg.batch)
                                      : "");
  }
  smem_bytes_ = kernels::megakernel_smem_bytes(scratch_floats_, num_stages_);
  int fit = 0;
  MEGALITH_CUDA_RETURN_IF_ERROR(kernels::megakernel_max_workers(smem_bytes_, paths_, &fit));
  const int workers_fit = options_.dynamic ? fit - 1 : fit;  // the schedulers take one CTA
  if (tg.num_workers > workers_fit) {
    return invalid_argument("the task graph has {} workers; this GPU runs at most {} at once{}",
                            tg.num_workers, workers_fit,
                            options_.dynamic ? " in dynamic mode, whose schedulers take an SM" : "");
  }
  return {};
}

Status DeviceProgram::allocate_and_upload() {
  Device& d = *dev_;
  MEGALITH_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&d.stream, cudaStreamNonBlocking));

  uint64_t arena_bytes = 0;
  buffer_offset_.resize(tg_.buffers.size());
  for (size_t b = 0; b < tg_.buffers.size(); ++b) {
    buffer_offset_[b] = arena_bytes;
    // The padding lets a bulk copy round its end up to 16 bytes inside the arena.
    arena_bytes += aligned(std::max<uint64_t>(tg_.buffers[b].bytes, 1));
  }
  MEGALITH_CUDA_RETURN_IF_ERROR(cudaMalloc(&d.arena, std::max<uint64_t>(arena_bytes, 1)));
  MEGALITH_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(d.arena, 0, arena_bytes, d.stream));
  for (uint32_t b = 0; b < tg_.buffers.size(); ++b) {
    const BufferDesc& desc = tg_.buffers[b];
    if (desc.kind == BufferKind::kActivation) {
      // NaN (all ones), so a read before its write shows.
      MEGALITH_RETURN_IF_ERROR(fill(b, 0xff));
    } else if (desc.kind == BufferKind::kConstant && !desc.data.empty()) {
      MEGALITH_RETURN_IF_ERROR(write(b, desc.data.data(), std::min<uint64_t>(desc.data.size(), desc.bytes)));
    }
  }

  // The queues as the device reads them: each entry's refs resolved to absolute addresses,
  // its waits carrying their events' trigger counts.
  std::vector<kernels::WaitTarget> waits(tg_.waits.size());
  for (size_t w = 0; w < tg_.waits.size(); ++w) {
    const abi::EventWait& ew = tg_.waits[w];
    waits[w] = {ew.event, tg_.events[ew.event].triggers, ew.step_offset, 0};
  }
  // A ref with its offset an absolute device address.
  const auto resolved = [&](abi::TensorRef r) {
    if (r.buffer != abi::kNoBuffer) {
      r.offset = reinterpret_cast<uint64_t>(d.arena + buffer_offset_[r.buffer] + r.offset);
    }
    return r;
  };
  const auto entry_of = [&](uint32_t task) {
    kernels::QueueEntry e{};
    e.task = tg_.tasks[task];
    e.task_index = task;
    e.signal_triggers = e.task.signal == abi::kNoEvent ? 0 : tg_.events[e.task.signal].triggers;
    for (abi::TensorRef& r : e.task.refs) r = resolved(r);
    for (uint32_t i = 0; i < e.task.wait_count && i < uint32_t(kernels::INLINE_WAITS); ++i) {
      e.waits[i] = waits[e.task.wait_begin + i];
    }
    return e;
  };
  std::vector<kernels::QueueEntry> entries(tg_.queue_tasks.size());
  for (size_t q = 0; q < entries.size(); ++q) entries[q] = entry_of(tg_.queue_tasks[q]);
  // Kernel-per-op mode: each op's tasks dealt round robin to min(tasks, workers) CTAs, each
  // CTA's share contiguous; op_queue_begin holds every op's CTA bounds one after the other.
  std::vector<kernels::QueueEntry> op_entries;
  std::vector<uint32_t> op_queue_begin;
  if (options_.kernel_per_op) {
    for (const FusedOpInfo& op : tg_.ops) {
      const uint32_t ctas = op_ctas(op, tg_.num_workers);
      for (uint32_t c = 0; c < ctas; ++c) {
        op_queue_begin.push_back(uint32_t(op_entries.size()));
        for (uint32_t t = c; t < op.task_count; t += ctas) op_entries.push_back(entry_of(op.task_begin + t));
      }
    }
    op_queue_begin.push_back(uint32_t(op_entries.size()));
  }

  // Entries, queue bounds, waits, counters, the error record and the abort flag, each
  // 256-byte aligned in one allocation.
  struct Piece {
    const void* host;
    uint64_t bytes;
    uint64_t offset = 0;
  };
  // Dynamic mode: each event's waiting tasks as its scheduler dispatches them, and each
  // entry's join counter, which starts with the waits its first step has from the step before.
  std::vector<uint32_t> entry_of_task(tg_.tasks.size()), worker_of_entry(tg_.queue_tasks.size());
  for (int32_t w = 0; w < tg_.num_workers; ++w) {
    for (uint32_t q = tg_.queue_begin[size_t(w)]; q < tg_.queue_begin[size_t(w) + 1]; ++q) {
      entry_of_task[tg_.queue_tasks[q]] = q;
      worker_of_entry[q] = uint32_t(w);
    }
  }
  std::vector<uint32_t> target_begin, event_triggers;
  std::vector<kernels::DispatchTarget> targets;
  std::vector<uint64_t> joins(tg_.queue_tasks.size(), 0);
  if (options_.dynamic) {
    for (const abi::EventDesc& ev : tg_.events) {
      event_triggers.push_back(ev.triggers);
      target_begin.push_back(uint32_t(targets.size()));
      for (uint32_t i = ev.consumer_begin; i < ev.consumer_begin + ev.consumer_count; ++i) {
        const abi::EventConsumer& c = tg_.consumers[i];
        const uint32_t q = entry_of_task[c.task];
        targets.push_back({q, worker_of_entry[q], tg_.tasks[c.task].wait_count, c.step_offset});
      }
    }
    target_begin.push_back(uint32_t(targets.size()));
    for (uint32_t q = 0; q < entries.size(); ++q) {
      const abi::TaskDesc& t = entries[q].task;
      for (uint32_t w = 0; w < t.wait_count; ++w) joins[q] += tg_.waits[t.wait_begin + w].step_offset;
      // Its joins reach wait_count * (first + 1) at the start of every launch: every launch
      // begins with it (the embedding, whose only wait is on the step before).
      if (joins[q] == t.wait_count) dynamic_seeds_.push_back({q, worker_of_entry[q]});
    }
    if (dynamic_seeds_.empty()) {
      return invalid_argument("dynamic mode: no task is ready at a launch's first step");
    }
  }
  // Claimed ops, their refs resolved like the entries'.
  std::vector<kernels::ClaimOp> claim_ops(claimed_.size());
  for (size_t c = 0; c < claimed_.size(); ++c) {
    const ClaimedOp& from = claimed_[c];
    kernels::ClaimOp& to = claim_ops[c];
    to.num_parts = int32_t(from.parts.size());
    to.group_rows = from.group_rows;
    to.total_groups = from.total_groups;
    to.capacity = from.capacity;
    for (size_t p = 0; p < from.parts.size(); ++p) {
      const ClaimedPart& part = from.parts[p];
      to.parts[p] = {resolved(part.weight), resolved(part.up_weight), resolved(part.bias),
                     resolved(part.up_bias), resolved(part.out), part.first_group, part.groups,
                     {0, 0}};
    }
  }
  Piece pieces[] = {
      {entries.data(), entries.size() * sizeof(kernels::QueueEntry)},
      {tg_.queue_begin.data(), tg_.queue_begin.size() * sizeof(uint32_t)},
      {waits.data(), waits.size() * sizeof(kernels::WaitTarget)},
      {nullptr, std::max<size_t>(tg_.events.size(), 1) * sizeof(uint64_t)},  // counters
      {nullptr, sizeof(kernels::MegakernelError)},
      {nullptr, sizeof(uint32_t)},  // abort flag
      {target_begin.data(), target_begin.size() * sizeof(uint32_t)},
      {targets.data(), targets.size() * sizeof(kernels::DispatchTarget)},
      {joins.data(), joins.size() * sizeof(uint64_t)},
      {op_entries.data(), op_entries.size() * sizeof(kernels::QueueEntry)},
      {op_queue_begin.data(), op_queue_begin.size() * sizeof(uint32_t)},
      {nullptr, sizeof(int64_t)},  // kernel-per-op mode's step
      {claim_ops.data(), claim_ops.size() * sizeof(kernels::ClaimOp)},
      {nullptr, std::max<size_t>(claim_ops.size(), 1) * sizeof(uint32_t)},  // claim counters
      {event_triggers.data(), event_triggers.size() * sizeof(uint32_t)},
  };
  uint64_t meta_bytes = 0;
  for (Piece& p : pieces) {
    p.offset = meta_bytes;
    meta_bytes += aligned(std::max<uint64_t>(p.bytes, 1));
  }
  MEGALITH_CUDA_RETURN_IF_ERROR(cudaMalloc(&d.meta, meta_bytes));
  MEGALITH_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(d.meta, 0, meta_bytes, d.stream));
  for (const Piece& p : pieces) {
    if (p.host && p.bytes) {
      MEGALITH_CUDA_RETURN_IF_ERROR(
          cudaMemcpyAsync(d.meta + p.offset, p.host, p.bytes, cudaMemcpyHostToDevice, d.stream));
    }
  }
  MEGALITH_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(d.stream));

  kernels::MegakernelArgs& a = d.args;
  a.entries = reinterpret_cast<const kernels::QueueEntry*>(d.meta + pieces[0].offset);
  a.queue_begin = reinterpret_cast<const uint32_t*>(d.meta + pieces[1].offset);
  a.waits = reinterpret_cast<const kernels::WaitTarget*>(d.meta + pieces[2].offset);
  a.counters = reinterpret_cast<uint64_t*>(d.meta + pieces[3].offset);
  a.error = reinterpret_cast<kernels::MegakernelError*>(d.meta + pieces[4].offset);
  a.abort_flag = reinterpret_cast<uint32_t*>(d.meta + pieces[5].offset);
  a.num_workers = uint32_t(tg_.num_workers);
  if (options_.dynamic) {
    a.dynamic.target_begin = reinterpret_cast<const uint32_t*>(d.meta + pieces[6].offset);
    a.dynamic.targets = reinterpret_cast<const kernels::DispatchTarget*>(d.meta + pieces[7].offset);
    a.dynamic.joins = reinterpret_cast<uint64_t*>(d.meta + pieces[8].offset);
    a.dynamic.num_events = uint32_t(tg_.events.size());
    a.dynamic.num_schedulers = uint32_t(kernels::SCHEDULER_WARPS);
    a.dynamic.event_triggers = reinterpret_cast<const uint32_t*>(d.meta + pieces[14].offset);
  }
  a.watchdog_ns = uint64_t(options_.watchdog_timeout_s * 1e9);
  const char* per_thread = std::getenv("MEGALITH_PER_THREAD_RELEASE");
  a.per_thread_release =
      options_.per_thread_release || (per_thread != nullptr && std::string(per_thread) == "1");
  if (!claimed_.empty()) {
    a.claims.ops = reinterpret_cast<const kernels::ClaimOp*>(d.meta + pieces[12].offset);
    a.claims.counters = reinterpret_cast<uint32_t*>(d.meta + pieces[13].offset);
    a.claims.num_ops = uint32_t(claimed_.size());
    const abi::TaskDesc& source = tg_.tasks[tg_.source_task];
    if (source.wait_count != 1) return invalid_argument("the step's source must wait on the sink");
    const abi::EventWait& w = tg_.waits[source.wait_begin];
    a.claims.step_end = {w.event, tg_.events[w.event].triggers, w.step_offset, 0};
  }
  a.scratch_floats = scratch_floats_;
  a.num_stages = num_stages_;
  if (options_.kernel_per_op) {
    d.device_step = reinterpret_cast<int64_t*>(d.meta + pieces[11].offset);
    MEGALITH_RETURN_IF_ERROR(capture_op_graph(
        reinterpret_cast<const kernels::QueueEntry*>(d.meta + pieces[9].offset),
        reinterpret_cast<const uint32_t*>(d.meta + pieces[10].offset)));
  }
  return {};
}

// Kernel-per-op mode: a step as one launch per op with tasks, in the task graph's (topological)
// op order, then the step's advance; captured once. Every launch publishes tokens to the
// host-mapped buffer, which therefore exists from the start.
Status DeviceProgram::capture_op_graph(const kernels::QueueEntry* entries,
                                       const uint32_t* queue_begin) {
  Device& d = *dev_;
  MEGALITH_CUDA_RETURN_IF_ERROR(kernels::configure_op_kernel(smem_bytes_, paths_));
  MEGALITH_CUDA_RETURN_IF_ERROR(cudaHostAlloc(
      &d.published, 16 + size_t(tg_.max_seq_len) * sizeof(kernels::PublishedToken), cudaHostAllocMapped));
  kernels::MegakernelArgs a = d.args;
  MEGALITH_CUDA_RETURN_IF_ERROR(
      cudaHostGetDevicePointer(reinterpret_cast<void**>(&a.published_count), d.published, 0));
  MEGALITH_CUDA_RETURN_IF_ERROR(cudaHostGetDevicePointer(
      reinterpret_cast<void**>(&a.published), static_cast<uint8_t*>(d.published) + 16, 0));
  a.entries = entries;
  a.device_step = d.device_step;
  cudaGraph_t graph = nullptr;
  MEGALITH_CUDA_RETURN_IF_ERROR(cudaStreamBeginCapture(d.stream, cudaStreamCaptureModeThreadLocal));
  cudaError_t e = cudaSuccess;
  uint32_t cta = 0;
  for (const FusedOpInfo& op : tg_.ops) {
    const uint32_t ctas = op_ctas(op, tg_.num_workers);
    if (ctas == 0) continue;
    a.queue_begin = queue_begin + cta;
    cta += ctas;
    if ((e = kernels::launch_op_kernel(a, paths_, int(ctas), d.stream)) != cudaSuccess) break;
  }
  if (e == cudaSuccess) e = kernels::launch_advance_step(d.device_step, d.stream);
  const cudaError_t ended = cudaStreamEndCapture(d.stream, &graph);
  MEGALITH_CUDA_RETURN_IF_ERROR(e);
  MEGALITH_CUDA_RETURN_IF_ERROR(ended);
  e = cudaGraphInstantiate(&d.op_graph, graph, 0);
  cudaGraphDestroy(graph);
  MEGALITH_CUDA_RETURN_IF_ERROR(e);
  return {};
}

Status DeviceProgram::write(uint32_t buffer, const void* data, uint64_t bytes, uint64_t offset) {
  if (buffer >= tg_.buffers.size() || offset + bytes > tg_.buffers[buffer].bytes) {
    return invalid_argument("write of {} bytes at {} is outside buffer {}", bytes, offset, buffer);
  }
  Device& d = *dev_;
  uint8_t* dst = d.arena + buffer_offset_[buffer] + offset;
  const auto* src = static_cast<const uint8_t*>(data);
  if (bytes <= kDirectCopyBytes) {
    MEGALITH_CUDA_RETURN_IF_ERROR(
        cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, d.stream));
    MEGALITH_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(d.stream));
    return {};
  }
  for (int i = 0; i < 2; ++i) {
    if (!d.staging[i]) {
      MEGALITH_CUDA_RETURN_IF_ERROR(cudaHostAlloc(&d.staging[i], kStagingBytes, cudaHostAllocDefault));
      MEGALITH_CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(&d.staged[i], cudaEventDisableTiming));
      MEGALITH_CUDA_RETURN_IF_ERROR(cudaEventRecord(d.staged[i], d.stream));
    }
  }
  // Two staging buffers: the host fills one while the other's copy is in flight.
  for (uint64_t done = 0, piece = 0; done < bytes; done += kStagingBytes, ++piece) {
    const int i = int(piece % 2);
    const uint64_t n = std::min(kStagingBytes, bytes - done);
    MEGALITH_CUDA_RETURN_IF_ERROR(cudaEventSynchronize(d.staged[i]));
    std::memcpy(d.staging[i], src + done, n);
    MEGALITH_CUDA_RETURN_IF_ERROR(
        cudaMemcpyAsync(dst + done, d.staging[i], n, cudaMemcpyHostToDevice, d.stream));
    MEGALITH_CUDA_RETURN_IF_ERROR(cudaEventRecord(d.staged[i], d.stream));
  }
  MEGALITH_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(d.stream));
  return {};
}

Status DeviceProgram::read(uint32_t buffer, void* data, uint64_t bytes, uint64_t offset) const {
  if (buffer >= tg_.buffers.size() || offset + bytes > tg_.buffers[buffer].bytes) {
    return invalid_argument("read of {} bytes at {} is outside buffer {}", bytes, offset, buffer);
  }
  const Device& d = *dev_;
  MEGALITH_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(data, d.arena + buffer_offset_[buffer] + offset,
                                                bytes, cudaMemcpyDeviceToHost, d.stream));
  MEGALITH_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(d.stream));
  return {};
}

Status DeviceProgram::fill(uint32_t buffer, uint8_t byte) {
  if (buffer >= tg_.buffers.size()) return invalid_argument("buffer {} does not exist", buffer);
  Device& d = *dev_;
  MEGALITH_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(d.arena + buffer_offset_[buffer], byte,
                                                tg_.buffers[buffer].bytes, d.stream));
  MEGALITH_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(d.stream));
  return {};
}

Status DeviceProgram::fill_random(uint32_t buffer, const abi::RandomWeightParams& params) {
  if (buffer >= tg_.buffers.size()) return invalid_argument("buffer {} does not exist", buffer);
  const BufferDesc& desc = tg_.buffers[buffer];
  const abi::RefType type = desc.type == ElemType::kBF16  ? abi::RefType::kBF16
                            : desc.type == ElemType::kF16 ? abi::RefType::kF16
                                                          : abi::RefType::kF32;
  const uint64_t elem = type == abi::RefType::kF32 ? 4 : 2;
  if (desc.type == ElemType::kI32 || desc.bytes % elem != 0) {
    return invalid_argument("buffer '{}' does not hold floating-point elements", desc.name);
  }
  Device& d = *dev_;
  MEGALITH_CUDA_RETURN_IF_ERROR(kernels::launch_random_weight_fill(
      d.arena + buffer_offset_[buffer], desc.bytes / elem, type, params, d.stream));
  MEGALITH_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(d.stream));
  return {};
}

Status DeviceProgram::run(int64_t first_step, int64_t end_step, std::vector<TaskTiming>* timings,
                          const TokenCallback& on_token, int64_t first_position) {
  if (broken_) return invalid_argument("the device program stopped after an error");
  if (first_step < 0 || end_step < first_step) {
    return invalid_argument("bad step range [{}, {})", first_step, end_step);
  }
  if (end_step == first_step) return {};
  Device& d = *dev_;
  kernels::MegakernelArgs args = d.args;
  args.first_step = first_step;
  args.end_step = end_step;
  if (timings && options_.kernel_per_op) {
    return unimplemented("kernel-per-op mode records no task trace; trace the megakernel");
  }
  const uint64_t trace_records = uint64_t(end_step - first_step) * tg_.queue_tasks.size();
  std::unique_ptr<kernels::TaskTrace, decltype(&cudaFree)> trace(nullptr, &cudaFree);
  if (timings) {
    kernels::TaskTrace* p = nullptr;
    MEGALITH_CUDA_RETURN_IF_ERROR(cudaMalloc(&p, trace_records * sizeof(kernels::TaskTrace)));
    trace.reset(p);
    args.trace = p;
    args.queue_length = uint32_t(tg_.queue_tasks.size());
  }
  broken_ = true;  // until the launch is known to have finished cleanly
  MEGALITH_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(args.error, 0, sizeof(kernels::MegakernelError), d.stream));
  MEGALITH_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(args.abort_flag, 0, sizeof(uint32_t), d.stream));
  if (args.claims.counters != nullptr) {
    // Each step's sampling resets them; a launch that stopped early may have left claims.
    MEGALITH_CUDA_RETURN_IF_ERROR(
        cudaMemsetAsync(args.claims.counters, 0, args.claims.num_ops * sizeof(uint32_t), d.stream));
  }
  uint64_t* published_count = nullptr;
  kernels::PublishedToken* published = nullptr;
  if (on_token) {
    if (!d.published) {
      MEGALITH_CUDA_RETURN_IF_ERROR(cudaHostAlloc(
          &d.published, 16 + size_t(tg_.max_seq_len) * sizeof(kernels::PublishedToken),
          cudaHostAllocMapped));
    }
    published_count = static_cast<uint64_t*>(d.published);
    published = reinterpret_cast<kernels::PublishedToken*>(static_cast<uint8_t*>(d.published) + 16);
    __atomic_store_n(published_count, uint64_t(first_position), __ATOMIC_RELEASE);
    MEGALITH_CUDA_RETURN_IF_ERROR(
        cudaHostGetDevicePointer(reinterpret_cast<void**>(&args.published_count), published_count, 0));
    MEGALITH_CUDA_RETURN_IF_ERROR(
        cudaHostGetDevicePointer(reinterpret_cast<void**>(&args.published), published, 0));
  }
  if (options_.dynamic) MEGALITH_RETURN_IF_ERROR(prepare_dynamic_launch(args, first_step, end_step));
  if (options_.kernel_per_op) {
    // The graph's launches read the step from device memory and advance it themselves.
    MEGALITH_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(d.device_step, &first_step, sizeof(first_step),
                                                  cudaMemcpyHostToDevice, d.stream));
    for (int64_t step = first_step; step < end_step; ++step) {
      MEGALITH_CUDA_RETURN_IF_ERROR(cudaGraphLaunch(d.op_graph, d.stream));
    }
  } else {
    MEGALITH_CUDA_RETURN_IF_ERROR(kernels::launch_megakernel(args, paths_, d.stream));
  }
  if (on_token) {
    // Hands over what the kernel has published until the launch is over, then the rest.
    int64_t delivered = first_position;
    const auto deliver = [&] {
      const int64_t count = int64_t(__atomic_load_n(published_count, __ATOMIC_ACQUIRE));
      for (; delivered < count; ++delivered) {
        on_token(delivered, published[delivered].token, published[delivered].logprob);
      }
    };
    cudaError_t state;
    while ((state = cudaStreamQuery(d.stream)) == cudaErrorNotReady) {
      deliver();
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    MEGALITH_CUDA_RETURN_IF_ERROR(state);
    deliver();
  }
  MEGALITH_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(d.stream));
  MEGALITH_RETURN_IF_ERROR(fault_report());
  broken_ = false;
  if (timings) {
    std::vector<kernels::TaskTrace> records(trace_records);
    MEGALITH_CUDA_RETURN_IF_ERROR(cudaMemcpy(records.data(), trace.get(),
                                             trace_records * sizeof(kernels::TaskTrace),
                                             cudaMemcpyDeviceToHost));
    timings->clear();
    timings->reserve(trace_records);
    for (int64_t step = first_step; step < end_step; ++step) {
      for (uint32_t w = 0; w < uint32_t(tg_.num_workers); ++w) {
        for (uint32_t q = tg_.queue_begin[w]; q < tg_.queue_begin[w + 1]; ++q) {
          const kernels::TaskTrace& r = records[uint64_t(step - first_step) * tg_.queue_tasks.size() + q];
          timings->push_back({tg_.queue_tasks[q], w, step, r.wait_ns, r.ready_ns, r.stream_begin_ns,
                              r.stream_end_ns, r.done_ns, r.sm, r.stalled_ns});
        }
      }
    }
  }
  return {};
}

// Zeroes dynamic mode's logs and counts for a launch of [first, end) and seeds the dispatch
// logs with the tasks ready at its first step (dynamic_seeds_: those whose join counter, its
// initial value plus one per wait per step run so far, already reaches wait_count *
// (first + 1), as the CPU executor's seed finds).
Status DeviceProgram::prepare_dynamic_launch(kernels::MegakernelArgs& args, int64_t first_step,
                                             int64_t end_step) {
  Device& d = *dev_;
  const uint64_t steps = uint64_t(end_step - first_step);
  const uint64_t schedulers = kernels::SCHEDULER_WARPS;
  const uint64_t room = (tg_.events.size() + schedulers - 1) / schedulers * steps;
  const uint64_t dispatch_bytes = aligned(tg_.queue_tasks.size() * steps * 8);
  const uint64_t activation_bytes = aligned(schedulers * room * 8);
  const uint64_t count_bytes = aligned((uint64_t(tg_.num_workers) + schedulers) * 4);
  if (steps > d.log_steps) {
    if (d.logs) MEGALITH_CUDA_RETURN_IF_ERROR(cudaFree(d.logs));
    d.logs = nullptr;
    MEGALITH_CUDA_RETURN_IF_ERROR(cudaMalloc(&d.logs, dispatch_bytes + activation_bytes + count_bytes));
    d.log_steps = steps;
  }
  kernels::DynamicArgs& dyn = args.dynamic;
  dyn.dispatch_log = reinterpret_cast<uint64_t*>(d.logs);
  dyn.activation_log = reinterpret_cast<uint64_t*>(d.logs + dispatch_bytes);
  dyn.dispatch_count = reinterpret_cast<uint32_t*>(d.logs + dispatch_bytes + activation_bytes);
  dyn.activation_count = dyn.dispatch_count + tg_.num_workers;
  dyn.activation_room = room;
  MEGALITH_CUDA_RETURN_IF_ERROR(
      cudaMemsetAsync(d.logs, 0, dispatch_bytes + activation_bytes + count_bytes, d.stream));
  std::vector<uint32_t> counts(size_t(tg_.num_workers), 0);
  std::vector<uint64_t> seeds(dynamic_seeds_.size());  // log entries: step first, the entry
  for (size_t i = 0; i < dynamic_seeds_.size(); ++i) {
    const auto [entry, worker] = dynamic_seeds_[i];
    seeds[i] = uint64_t(1) << 32 | entry;
    const uint64_t slot = uint64_t(tg_.queue_begin[worker]) * steps + counts[worker]++;
    MEGALITH_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(dyn.dispatch_log + slot, &seeds[i], 8,
                                                  cudaMemcpyHostToDevice, d.stream));
  }
  MEGALITH_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(dyn.dispatch_count, counts.data(), counts.size() * 4,
                                                cudaMemcpyHostToDevice, d.stream));
  // The copies read `seeds` and `counts`, which end with this function.
  MEGALITH_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(d.stream));
  return {};
}

Status DeviceProgram::fault_report() const {
  const Device& d = *dev_;
  kernels::MegakernelError err{};
  MEGALITH_CUDA_RETURN_IF_ERROR(
      cudaMemcpy(&err, d.args.error, sizeof(err), cudaMemcpyDeviceToHost));
  if (err.fault == uint32_t(MegakernelFault::kNone)) return {};
  std::string task = fmt::format("task {}", err.task);
  if (err.task < tg_.tasks.size()) {
    const abi::TaskDesc& t = tg_.tasks[err.task];
    task = fmt::format("task {} ({} of '{}')", err.task, task_kind_name(t.kind),
                       t.op < tg_.ops.size() ? tg_.ops[t.op].name : std::string("?"));
  }
  const double timeout = options_.watchdog_timeout_s;
  switch (MegakernelFault(err.fault)) {
    case MegakernelFault::kEventTimeout:
      return {StatusCode::kInternal,
              fmt::format("deadlock: worker {} waited {:g} s on {} at step {} for event {}: "
                          "counter {} of {} ({} signals per step)",
                          err.worker, timeout, task, err.step, err.event, err.counter, err.target,
                          err.event < tg_.events.size() ? tg_.events[err.event].triggers : 0)};
    case MegakernelFault::kRingTimeout:
      return {StatusCode::kInternal,
              fmt::format("weight ring stalled: worker {} waited {:g} s on a stage during {} at "
                          "step {}", err.worker, timeout, task, err.step)};
    case MegakernelFault::kDispatchTimeout:
      return {StatusCode::kInternal,
              fmt::format("dynamic mode: {} waited {:g} s for its task number {} of the launch",
                          err.worker >= uint32_t(tg_.num_workers)
                              ? std::string("the scheduler")
                              : fmt::format("worker {}", err.worker),
                          timeout, err.task)};
    case MegakernelFault::kUnsupportedTask:
      return {StatusCode::kInternal, fmt::format("worker {} cannot run {}", err.worker, task)};
    case MegakernelFault::kNone: break;
  }
  return {StatusCode::kInternal, fmt::format("megakernel fault {} on worker {}", err.fault, err.worker)};
}

}  // namespace megalith::cuda
