// Dynamic mode (DESIGN.md section 2, the scheduler of the MPK paper): the task whose signal
// completes an event for a step appends (event, step) to the log of the event's scheduler
// warp; the scheduler adds one to the join counter of each task that waits on the event, and
// the one that completes a task's waits for a step appends (task, step) to the dispatch log
// of the task's worker. Workers run their log in order: a task is there only once all its
// events fired. The producer warp of a worker follows the same log to stream weights.
//
// A launch runs every task once per step, so the logs have fixed room and never wrap
// (layout.h, DynamicArgs); counters and joins only grow, as the events do.
#pragma once

#include <stdint.h>

#include "common/sync.cuh"
#include "megakernel/layout.h"
#include "megakernel/watchdog.cuh"
#include "megakernel/weight_ring.cuh"

namespace megalith::kernels {

__device__ __forceinline__ bool dynamic_mode(const MegakernelArgs& args) {
  return args.dynamic.num_schedulers > 0;
}

__device__ __forceinline__ uint64_t log_entry(const MegakernelArgs& args, int64_t step,
                                              uint32_t index) {
  return uint64_t(step - args.first_step + 1) << 32 | index;
}
__device__ __forceinline__ uint32_t log_index(uint64_t entry) { return uint32_t(entry); }
__device__ __forceinline__ int64_t log_step(const MegakernelArgs& args, uint64_t entry) {
  return int64_t(entry >> 32) - 1 + args.first_step;
}

// Worker `worker`'s dispatch log.
__device__ __forceinline__ uint64_t* dispatch_log(const MegakernelArgs& args, uint32_t worker) {
  return args.dynamic.dispatch_log +
         uint64_t(args.queue_begin[worker]) * uint64_t(args.end_step - args.first_step);
}

// Entry n of a log once it has been appended; 0 when the launch was aborted or, with
// `fault`, the wait outlasted `timeout_ns` (then reported as a dispatch timeout at entry n).
__device__ inline uint64_t wait_log(const MegakernelArgs& args, const uint64_t* log, uint64_t n,
                                    uint64_t timeout_ns, bool fault) {
  Spin spin(args, timeout_ns, /*watch_abort=*/true);
  for (uint64_t v = ld_acquire_gpu(log + n);; v = ld_acquire_gpu(log + n)) {
    if (v != 0) return v;
    const SpinState s = spin.poll();
    if (s == SpinState::kWaiting) continue;
    if (s == SpinState::kExpired && fault) {
      report_fault(args, MegakernelFault::kDispatchTimeout, uint32_t(n), args.first_step,
                   abi::kNoEvent, 0, 0);
    }
    return 0;
  }
}

// The producer, dynamic mode: streams the weights of the worker's tasks in the order the
// schedulers dispatch them, so a task's weights start only once it is ready.
__device__ inline void run_dynamic_producer(const MegakernelArgs& args, const Ring& ring) {
  const uint64_t* log = dispatch_log(args, blockIdx.x);
  const uint64_t total = uint64_t(args.queue_begin[blockIdx.x + 1] - args.queue_begin[blockIdx.x]) *
                         uint64_t(args.end_step - args.first_step);
  const uint64_t policy = l2_evict_first_policy();
  ProducerState p;
  for (uint64_t n = 0; n < total; ++n) {
    // The consumers report a dispatch that never comes; the producer only leaves.
    uint64_t v = wait_log(args, log, n, 2 * args.watchdog_ns, false);
    if (!lanes_agree(v != 0)) v = 0;  // an entry, once written, is the same for every lane
    const QueueEntry& e = args.entries[log_index(v)];
    if (v == 0 ||
        !stream_task_weights(args, ring, e.task, e.task_index, log_step(args, v), policy, p)) {
      drain_producer(ring, p);
      return;
    }
  }
}

// Signals `event` (of `triggers` per step) at `step` and hands it to its scheduler when this
// signal completed it.
__device__ inline void signal_and_activate_event(const MegakernelArgs& args, uint32_t event,
                                                 uint32_t triggers, int64_t step) {
  const uint64_t before = atom_add_release_gpu(args.counters + event, 1);
  if (before + 1 != uint64_t(triggers) * uint64_t(step + 1)) return;
  const DynamicArgs& d = args.dynamic;
  const uint32_t s = event % d.num_schedulers;
  const uint32_t slot = atomicAdd(d.activation_count + s, 1u);
  st_release_gpu(d.activation_log + s * d.activation_room + slot, log_entry(args, step, event));
}

// Thread 0 of a worker, once the task of entry `e` has finished at `step`, in dynamic mode:
// its event, and its second one if it has one (TaskDesc::second_signal).
__device__ inline void signal_and_activate(const MegakernelArgs& args, const QueueEntry& e,
                                           int64_t step) {
  signal_and_activate_event(args, e.task.signal, e.signal_triggers, step);
  if (e.task.second_signal != abi::kNoEvent) {
    signal_and_activate_event(args, e.task.second_signal,
                              args.dynamic.event_triggers[e.task.second_signal], step);
  }
}

// Scheduler warp `s`: every activation of its events for the launch's steps, in the order
// they came; the lanes share each event's waiting tasks.
__device__ inline void run_scheduler(const MegakernelArgs& args, uint32_t s) {
  const DynamicArgs& d = args.dynamic;
  const uint64_t steps = uint64_t(args.end_step - args.first_step);
  const uint64_t events = s < d.num_events ? (d.num_events - 1 - s) / d.num_schedulers + 1 : 0;
  const uint64_t* log = d.activation_log + s * d.activation_room;
  const int lane = int(threadIdx.x % 32);
  for (uint64_t n = 0; n < events * steps; ++n) {
    // Lane 0 waits; a scheduler idles while the workers compute, so its wait is not a fault
    // before twice the watchdog's time.
    uint64_t v = lane == 0 ? wait_log(args, log, n, 2 * args.watchdog_ns, true) : 0;
    v = __shfl_sync(0xffffffffu, v, 0);
    if (v == 0) return;
    const uint32_t event = log_index(v);
    const int64_t step = log_step(args, v);
    for (uint32_t i = d.target_begin[event] + lane; i < d.target_begin[event + 1]; i += 32) {
      const DispatchTarget c = d.targets[i];
      const int64_t task_step = step + int64_t(c.step_offset);
      const uint64_t joined =
          atomicAdd(reinterpret_cast<unsigned long long*>(d.joins + c.entry), 1ull) + 1;
      if (joined != uint64_t(c.wait_count) * uint64_t(task_step + 1) ||
          task_step >= args.end_step) {
        continue;
      }
      const uint32_t slot = atomicAdd(d.dispatch_count + c.worker, 1u);
      st_release_gpu(dispatch_log(args, c.worker) + slot, log_entry(args, task_step, c.entry));
    }
  }
}

}  // namespace megalith::kernels
