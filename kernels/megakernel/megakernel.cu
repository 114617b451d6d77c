// The persistent megakernel: one worker CTA per SM. Static mode: each worker runs its
// compiler-ordered queue once per step; dynamic mode: the tasks its scheduler warps dispatch
// (dispatch.cuh). For each task the consumer warps wait (acquire) on the task's events, run
// the task's device code, and signal (release) its event; the producer warp meanwhile streams
// the weights of the worker's linear tasks through the shared-memory ring.
#include "common/sync.cuh"
#include "megakernel/dispatch.cuh"
#include "megakernel/launch.h"
#include "megakernel/task_env.cuh"
#include "megakernel/watchdog.cuh"
#include "megakernel/weight_ring.cuh"
#include "tasks/attention_merge.cuh"
#include "tasks/attention_partial.cuh"
#include "tasks/embedding.cuh"
#include "tasks/linear.cuh"
#include "tasks/sample.cuh"

namespace megalith::kernels {

namespace {

// Thread 0 of the consumers: acquires every event the entry's task waits on at `step`. False
// when the watchdog fired here or another worker aborted the launch.
__device__ bool wait_events(const MegakernelArgs& args, const QueueEntry& e, int64_t step) {
  for (uint32_t i = 0; i < e.task.wait_count; ++i) {
    const WaitTarget w = i < INLINE_WAITS ? e.waits[i] : args.waits[e.task.wait_begin + i];
    if (!wait_target(args, w, step, e.task_index, args.watchdog_ns)) return false;
  }
  return true;
}

template <KernelPaths P>
__device__ __forceinline__ void run_task(TaskEnv& env, const abi::TaskDesc& t) {
  // Every kind listed (no default): a kind added to tasks.def without a case here warns.
  switch (t.kind) {
    case abi::TaskKind::kRmsNormLinear:
    case abi::TaskKind::kLinearResidual:
    case abi::TaskKind::kRmsNormGateUpSilu:
    case abi::TaskKind::kLmHead: run_linear<P>(env, t); return;  // one body for the four
    case abi::TaskKind::kEmbedding: run_embedding(env, t); return;
    case abi::TaskKind::kAttentionPartial: run_attention_partial<P>(env, t); return;
    case abi::TaskKind::kAttentionMerge: run_attention_merge(env, t); return;
    case abi::TaskKind::kSample: run_sample(env, t); return;
  }
  fail_unsupported(env);
}

// What a task can do before its events fire, on every consumer thread while thread 0 waits:
// load the inputs that do not depend on them.
template <KernelPaths P>
__device__ __forceinline__ void prepare_task(TaskEnv& env, const abi::TaskDesc& t) {
  const abi::LinearForm form = abi::linear_form(t.kind);
  if (form.weights > 0) {
    if (form.norm) start_norm_weight_copy(env, t);
    if (claims_rows<P>(env.args, t)) start_claimed_op_copy(env, t);
  } else if (t.kind == abi::TaskKind::kAttentionPartial) {
    env.staged_rows = 0;
    if (t.params.attention.stage_cache != 0) start_cache_staging(env, t);  // has a barrier
    start_rotation_table(env, t);
  }
}

constexpr int ENTRY_VECTORS = sizeof(QueueEntry) / 16;

// Thread 0, static mode: increments the task's event, or its two (TaskDesc::second_signal)
// after one fence, so that both go out at once: a second release would wait for the first.
__device__ __forceinline__ void signal_events(const MegakernelArgs& args, const abi::TaskDesc& t) {
  if (t.second_signal == abi::kNoEvent) {
    red_release_gpu_add(args.counters + t.signal, 1);
    return;
  }
  fence_acq_rel_gpu();
  red_relaxed_gpu_add(args.counters + t.signal, 1);
  red_relaxed_gpu_add(args.counters + t.second_signal, 1);
}

// What the consumer threads share besides the task scratch.
struct ConsumerShared {
  volatile uint32_t stop;  // thread 0 saw the launch end (abort or watchdog)
  uint64_t dispatched;     // dynamic mode: the log entry thread 0 took
};

// Dynamic mode: queue entry `e` (in shared memory), the task of entry q, at `step`: prepare,
// wait for the events (already fired), run, signal and hand a completed event to its
// scheduler. False when this worker's launch is over.
__device__ __forceinline__ bool run_dispatched(TaskEnv& env, const QueueEntry& e, uint32_t q,
                                               int64_t step, ConsumerShared* shared) {
  const MegakernelArgs& args = env.args;
  TaskTrace trace{};
  prepare_task<KernelPaths::kGeneral>(env, e.task);
  if (env.tid == 0) {
    if (args.trace) trace.wait_ns = global_timer_ns();
    shared->stop = wait_events(args, e, step) ? 0u : 1u;
    if (args.trace) trace.ready_ns = global_timer_ns();
  }
  consumer_sync();
  if (shared->stop != 0) {
    wait_async_copies();  // prepare_task's copies write this CTA's shared memory
    return false;
  }
  env.step = step;
  env.task = e.task_index;
  env.stream_begin_ns = env.stream_end_ns = 0;
  env.stalled_ns = 0;
  run_task<KernelPaths::kGeneral>(env, e.task);
  if (env.failed) return false;
  consumer_sync();  // as in static mode: the task's writes before the release
  if (env.tid == 0 && e.task.signal != abi::kNoEvent) signal_and_activate(args, e, step);
  if (env.tid == 0 && args.trace) {
    trace.stream_begin_ns = env.stream_begin_ns;
    trace.stream_end_ns = env.stream_end_ns;
    trace.stalled_ns = env.stalled_ns;
    trace.done_ns = global_timer_ns();
    trace.sm = sm_id();
    args.trace[uint64_t(step - args.first_step) * args.queue_length + q] = trace;
  }
  return true;
}

// Static mode: the worker's queue in order, step after step (the loop as it was measured: a
// shared helper with dynamic mode cost its registers, ptxas spills 488/520 -> 652/616 B).
template <KernelPaths P>
__device__ __forceinline__ void run_static_consumer(const MegakernelArgs& args, const Ring& ring,
                                                    uint8_t* smem, volatile uint32_t* stop) {
  TaskEnv env = consumer_env(args, ring, smem);
  const uint32_t worker = blockIdx.x;
  const uint32_t q_begin = args.queue_begin[worker], q_end = args.queue_begin[worker + 1];
  if (q_begin == q_end) return;
  // Two entry slots: the task running and the next one, whose descriptor arrives from global
  // memory while the current task waits and runs, off the critical path.
  auto* slots = reinterpret_cast<uint4*>(smem + SMEM_ENTRY_OFFSET);
  const auto* entries = reinterpret_cast<const uint4*>(args.entries);
  if (env.tid < ENTRY_VECTORS) slots[env.tid] = entries[size_t(q_begin) * ENTRY_VECTORS + env.tid];
  consumer_sync();
  uint32_t slot = 0;
  for (int64_t step = args.first_step; step < args.end_step; ++step) {
    for (uint32_t q = q_begin; q < q_end; ++q) {
      const QueueEntry& e = reinterpret_cast<const QueueEntry*>(slots)[slot];
      const uint32_t next = q + 1 < q_end ? q + 1 : q_begin;
      uint4 staged{};
      if (env.tid < ENTRY_VECTORS) staged = entries[size_t(next) * ENTRY_VECTORS + env.tid];
      TaskTrace trace{};
      prepare_task<P>(env, e.task);
      if (env.tid == 0) {
        if (args.trace) trace.wait_ns = global_timer_ns();
        *stop = wait_events(args, e, step) ? 0u : 1u;
        if (args.trace) trace.ready_ns = global_timer_ns();
      }
      consumer_sync();
      if (*stop != 0) {
        wait_async_copies();  // prepare_task's copies write this CTA's shared memory
        return;
      }
      env.step = step;
      env.task = e.task_index;
      env.stream_begin_ns = env.stream_end_ns = 0;
      env.stalled_ns = 0;
      run_task<P>(env, e.task);
      if (env.failed) return;
      if (env.tid < ENTRY_VECTORS) slots[(slot ^ 1) * ENTRY_VECTORS + env.tid] = staged;
      // Every consumer thread's writes happen before thread 0's release (the barrier orders
      // them, the release is cumulative), so the event's consumers see the whole output.
      consumer_sync();
      if (env.tid == 0 && e.task.signal != abi::kNoEvent) signal_events(args, e.task);
      env.ring.task_finished();
      if (env.tid == 0 && args.trace) {
        trace.stream_begin_ns = env.stream_begin_ns;
        trace.stream_end_ns = env.stream_end_ns;
        trace.stalled_ns = env.stalled_ns;
        trace.done_ns = global_timer_ns();
        trace.sm = sm_id();
        args.trace[uint64_t(step - args.first_step) * args.queue_length + q] = trace;
      }
      slot ^= 1;
    }
  }
}

// Dynamic mode: the worker's tasks in the order the schedulers dispatch them.
__device__ __forceinline__ void run_dynamic_consumer(const MegakernelArgs& args, const Ring& ring,
                                                     uint8_t* smem, ConsumerShared* shared) {
  const uint32_t q_begin = args.queue_begin[blockIdx.x], q_end = args.queue_begin[blockIdx.x + 1];
  TaskEnv env = consumer_env(args, ring, smem);
  auto* slot = reinterpret_cast<uint4*>(smem + SMEM_ENTRY_OFFSET);
  const uint64_t* log = dispatch_log(args, blockIdx.x);
  const uint64_t total = uint64_t(q_end - q_begin) * uint64_t(args.end_step - args.first_step);
  const auto* entries = reinterpret_cast<const uint4*>(args.entries);
  for (uint64_t n = 0; n < total; ++n) {
    if (env.tid == 0) shared->dispatched = wait_log(args, log, n, args.watchdog_ns, true);
    consumer_sync();
    const uint64_t v = shared->dispatched;
    if (v == 0) return;
    const uint32_t q = log_index(v);
    if (env.tid < ENTRY_VECTORS) slot[env.tid] = entries[size_t(q) * ENTRY_VECTORS + env.tid];
    consumer_sync();
    if (!run_dispatched(env, *reinterpret_cast<const QueueEntry*>(slot), q, log_step(args, v),
                        shared)) {
      return;
    }
  }
}

// A CTA of a dynamic-mode launch: a worker, or (the one after the workers) the schedulers'.
// Out of line: a second inlined copy of every task would take registers from static mode's
// loop (ptxas: the kernel's spills went from 488/520 to 1384/1928 B).
__device__ __noinline__ void run_dynamic_cta(const MegakernelArgs& args, uint8_t* smem,
                                             ConsumerShared* shared) {
  if (blockIdx.x >= args.num_workers) {
    if (threadIdx.x / 32 < args.dynamic.num_schedulers) run_scheduler(args, threadIdx.x / 32);
    return;
  }
  const Ring ring = setup_ring(args, smem);
  if (threadIdx.x / 32 == PRODUCER_WARP) {
    if (int(threadIdx.x % 32) < PRODUCER_LANES) run_dynamic_producer(args, ring);
    return;
  }
  run_dynamic_consumer(args, ring, smem, shared);
}

// Kernel-per-op mode: static mode's worker loop, producer and consumers, for one step
// (*args.device_step) of the CTA's queue, its share of one fused op's tasks. The launches
// before it in the stream ran every task it waits on, so its waits pass at once.
template <KernelPaths P>
__global__ void __launch_bounds__(WORKER_THREADS, 1) op_kernel(const MegakernelArgs args) {
  extern __shared__ __align__(128) uint8_t smem[];
  __shared__ ConsumerShared shared;
  MegakernelArgs one_step = args;
  one_step.first_step = *args.device_step;
  one_step.end_step = one_step.first_step + 1;
  const Ring ring = setup_ring(one_step, smem);
  if (threadIdx.x / 32 == PRODUCER_WARP) {
    if (int(threadIdx.x % 32) < PRODUCER_LANES) run_producer<P>(one_step, ring);
    return;
  }
  run_static_consumer<P>(one_step, ring, smem, &shared.stop);
}

// Kernel-per-op mode: the last node of a step's graph moves every launch on to the next step.
__global__ void advance_step(int64_t* step) { *step += 1; }

// A worker CTA; in dynamic mode (kGeneral only: the host launches kBf16Decode in static mode)
// the one after the workers holds the schedulers.
template <KernelPaths P>
__device__ __forceinline__ void run_cta(const MegakernelArgs& args) {
  extern __shared__ __align__(128) uint8_t smem[];
  __shared__ ConsumerShared shared;
  if constexpr (P == KernelPaths::kGeneral) {
    if (dynamic_mode(args)) {
      run_dynamic_cta(args, smem, &shared);
      return;
    }
  }
  const Ring ring = setup_ring(args, smem);
  if (threadIdx.x / 32 == PRODUCER_WARP) {
    if (int(threadIdx.x % 32) < PRODUCER_LANES) run_producer<P>(args, ring);
    return;
  }
  run_static_consumer<P>(args, ring, smem, &shared.stop);
}

// The bf16 decode kernel takes its arguments as __grid_constant__, in the parameter space: a
// TaskEnv refers to them, and a reference to an ordinary kernel parameter is a copy of the
// whole struct in every thread's local memory. The general kernel keeps that copy: with
// __grid_constant__ its dynamic mode, whose out-of-line CTA then reads the arguments through
// a generic pointer into the parameter space, measured 6.75 ms a token on Qwen3-8B against
// 6.16-6.26 without (docs/performance.md, twenty-first session).
__global__ void __launch_bounds__(WORKER_THREADS, 1) megakernel_general(const MegakernelArgs args) {
  run_cta<KernelPaths::kGeneral>(args);
}
__global__ void __launch_bounds__(WORKER_THREADS, 1)
    megakernel_bf16_decode(const __grid_constant__ MegakernelArgs args) {
  run_cta<KernelPaths::kBf16Decode>(args);
}

// The kernels of `paths`.
const void* megakernel_for(KernelPaths paths) {
  return paths == KernelPaths::kBf16Decode
             ? reinterpret_cast<const void*>(&megakernel_bf16_decode)
             : reinterpret_cast<const void*>(&megakernel_general);
}
const void* op_kernel_for(KernelPaths paths) {
  return paths == KernelPaths::kBf16Decode
             ? reinterpret_cast<const void*>(&op_kernel<KernelPaths::kBf16Decode>)
             : reinterpret_cast<const void*>(&op_kernel<KernelPaths::kGeneral>);
}

}  // namespace

cudaError_t megakernel_max_workers(size_t smem_bytes, KernelPaths paths, int* workers) {
  const void* kernel = megakernel_for(paths);
  cudaError_t e =
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem_bytes));
  if (e != cudaSuccess) return e;
  int device = 0, sms = 0, per_sm = 0;
  if ((e = cudaGetDevice(&device)) != cudaSuccess) return e;
  if ((e = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device)) != cudaSuccess) {
    return e;
  }
  e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, WORKER_THREADS, smem_bytes);
  if (e != cudaSuccess) return e;
  *workers = sms * per_sm;
  return cudaSuccess;
}

cudaError_t configure_op_kernel(size_t smem_bytes, KernelPaths paths) {
  return cudaFuncSetAttribute(op_kernel_for(paths), cudaFuncAttributeMaxDynamicSharedMemorySize,
                              int(smem_bytes));
}

cudaError_t launch_op_kernel(const MegakernelArgs& args, KernelPaths paths, int ctas,
                             cudaStream_t stream) {
  MegakernelArgs copy = args;
  void* params[] = {&copy};
  return cudaLaunchKernel(op_kernel_for(paths), dim3(ctas), dim3(WORKER_THREADS), params,
                          megakernel_smem_bytes(args.scratch_floats, args.num_stages), stream);
}

cudaError_t launch_advance_step(int64_t* step, cudaStream_t stream) {
  advance_step<<<1, 1, 0, stream>>>(step);
  return cudaGetLastError();
}

cudaError_t launch_megakernel(const MegakernelArgs& args, KernelPaths paths, cudaStream_t stream) {
  const void* kernel = megakernel_for(paths);
  const size_t smem = megakernel_smem_bytes(args.scratch_floats, args.num_stages);
  cudaError_t e =
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem));
  if (e != cudaSuccess) return e;
  MegakernelArgs copy = args;
  void* params[] = {&copy};
  return cudaLaunchCooperativeKernel(kernel, dim3(megakernel_ctas(args)), dim3(WORKER_THREADS),
                                     params, smem, stream);
}

}  // namespace megalith::kernels
