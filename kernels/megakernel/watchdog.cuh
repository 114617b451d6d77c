// The debug watchdog: a spin that lasts longer than MegakernelArgs::watchdog_ns becomes an
// error record the host reads after the launch, and every other spinning thread of the grid
// leaves when it sees the abort flag. A deadlocked task graph or a broken weight stream thus
// ends the launch with a report instead of hanging the GPU.
//
//   Spin spin(args, args.watchdog_ns, /*watch_abort=*/true);
//   while (!ready()) {
//     const SpinState s = spin.poll();
//     if (s == SpinState::kExpired) report_fault(args, ...);
//     if (s != SpinState::kWaiting) return false;
//   }
#pragma once

#include <stdint.h>

#include "common/sync.cuh"
#include "megakernel/layout.h"

namespace megalith::kernels {

// Records the first fault of the launch and raises the abort flag.
__device__ inline void report_fault(const MegakernelArgs& args, MegakernelFault fault,
                                    uint32_t task, int64_t step, uint32_t event, uint64_t counter,
                                    uint64_t target) {
  if (atomicCAS(&args.error->fault, uint32_t(MegakernelFault::kNone), uint32_t(fault)) ==
      uint32_t(MegakernelFault::kNone)) {
    args.error->worker = blockIdx.x;
    args.error->task = task;
    args.error->event = event;
    args.error->step = step;
    args.error->counter = counter;
    args.error->target = target;
  }
  __threadfence();
  atomicExch(args.abort_flag, 1u);
}

enum class SpinState { kWaiting, kExpired, kAborted };

// One spinning wait. The timer and the abort flag are read every few iterations only, so a
// short wait costs a register compare.
class Spin {
 public:
  __device__ Spin(const MegakernelArgs& args, uint64_t timeout_ns, bool watch_abort)
      : args_(args), timeout_ns_(timeout_ns), watch_abort_(watch_abort) {}

  // kExpired once the wait has lasted past the timeout; kAborted, when watching the flag, once
  // another thread has given up.
  __device__ SpinState poll() {
    if ((++spins_ & 63) != 0) return SpinState::kWaiting;
    if (watch_abort_ && ld_relaxed_gpu(args_.abort_flag) != 0) return SpinState::kAborted;
    if (timeout_ns_ == 0) return SpinState::kWaiting;
    const uint64_t now = global_timer_ns();
    if (start_ == 0) start_ = now;
    return now - start_ > timeout_ns_ ? SpinState::kExpired : SpinState::kWaiting;
  }

 private:
  const MegakernelArgs& args_;
  uint64_t timeout_ns_;
  bool watch_abort_;
  uint32_t spins_ = 0;
  uint64_t start_ = 0;
};

// Acquires event `w` at `step`: spins until its counter reaches the step's target. False when
// the spin outlasted `timeout_ns` (reported as task `task`'s) or another worker aborted.
__device__ inline bool wait_target(const MegakernelArgs& args, const WaitTarget& w, int64_t step,
                                   uint32_t task, uint64_t timeout_ns) {
  const uint64_t target = uint64_t(w.triggers) * uint64_t(step + 1 - int64_t(w.step_offset));
  const uint64_t* counter = args.counters + w.event;
  Spin spin(args, timeout_ns, /*watch_abort=*/true);
  for (uint64_t now = ld_acquire_gpu(counter); now < target; now = ld_acquire_gpu(counter)) {
    const SpinState s = spin.poll();
    if (s == SpinState::kWaiting) continue;
    if (s == SpinState::kExpired) {
      report_fault(args, MegakernelFault::kEventTimeout, task, step, w.event, now, target);
    }
    return false;
  }
  return true;
}

}  // namespace megalith::kernels
