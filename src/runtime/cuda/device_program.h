// A task graph resident on the GPU: every buffer in one device arena, the descriptors, events
// and queues uploaded, and the event counters that persist across launches. run() is one
// cooperative launch of the megakernel for a range of steps. Internal to the CUDA executor
// (and its tests): it knows buffers by index, not by what they hold.
//
//   MEGALITH_ASSIGN_OR_RETURN(auto program, DeviceProgram::create(tg, {}));
//   MEGALITH_RETURN_IF_ERROR(program->write(b, host.data(), host.size()));
//   MEGALITH_RETURN_IF_ERROR(program->run(0, 16));   // steps 0..15, one launch
//   MEGALITH_RETURN_IF_ERROR(program->read(b, host.data(), host.size()));
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "megalith/abi/random_weight.h"
#include "megalith/compiler/claimed_rows.h"
#include "megalith/compiler/task_graph.h"
#include "megalith/core/status.h"
#include "megalith/runtime/cuda_executor.h"

namespace megalith::kernels {
struct MegakernelArgs;
struct QueueEntry;
enum class KernelPaths : uint32_t;
}

namespace megalith::cuda {

struct DeviceProgramOptions {
  int32_t device = 0;
  // A worker spinning longer than this on one event or ring stage ends the launch with an
  // error naming the task and the event; 0 waits forever.
  double watchdog_timeout_s = 20.0;
  // Every consumer thread, not one per warp, frees the ring's stages: slower, and what
  // compute-sanitizer racecheck can follow. MEGALITH_PER_THREAD_RELEASE=1 sets it too.
  bool per_thread_release = false;
  uint32_t max_stages = 0;  // weight ring stages (as many as fit, up to this); 0: 3, the fastest
  // Dynamic mode: scheduler warps on an SM of their own dispatch each task to its worker once
  // its events fired, instead of each worker running its queue in the compiler's order. The
  // GPU needs one SM more than the task graph has workers.
  bool dynamic = false;
  // Kernel-per-op mode, the ablation of the megakernel: the same tasks, one ordinary launch
  // per fused op (its tasks dealt round robin to at most num_workers CTAs), a step's launches
  // captured once in a CUDA graph that run() replays once per step.
  bool kernel_per_op = false;
  // Static mode: the linear ops the compiler marked deal their rows out at run time
  // (compiler/claimed_rows.h); false runs every task on its own tile, as the other modes do.
  bool claim_rows = true;
  // Runs bf16 decode graphs on the general kernel too (kernels::KernelPaths; for A/B runs and
  // tests of that kernel): by default they take the kernel compiled for them alone.
  bool general_paths = false;
};

class DeviceProgram {
 public:
  // Validates that the megakernel can run every task, allocates and initializes the buffers
  // (activations NaN, state and io zero, constants from the graph; weights zero until
  // written) and uploads the program. The task graph is copied.
  static StatusOr<std::unique_ptr<DeviceProgram>> create(const TaskGraph& tg,
                                                         const DeviceProgramOptions& options);
  ~DeviceProgram();
  DeviceProgram(const DeviceProgram&) = delete;
  DeviceProgram& operator=(const DeviceProgram&) = delete;

  // Host <-> device copies of buffer bytes [offset, offset + bytes). Large writes go through
  // pinned staging buffers, two at a time in flight.
  Status write(uint32_t buffer, const void* data, uint64_t bytes, uint64_t offset = 0);
  Status read(uint32_t buffer, void* data, uint64_t bytes, uint64_t offset = 0) const;
  Status fill(uint32_t buffer, uint8_t byte);
  // Generates a weight in place (abi/random_weight.h), converted to the buffer's element type.
  Status fill_random(uint32_t buffer, const abi::RandomWeightParams& params);

  // One launch: every worker's queue once per step for steps [first, end). Returns when the
  // launch has finished; a watchdog fault or a CUDA error comes back as a Status, after which
  // the program must not run again. With `timings`, every task's times at every step. With
  // `on_token`, the sequence's positions from `first_position` on are handed to it in order
  // as the kernel publishes them (host-mapped memory), while the launch runs.
  using TokenCallback = std::function<void(int64_t position, int32_t token, float logprob)>;
  Status run(int64_t first_step, int64_t end_step, std::vector<TaskTiming>* timings = nullptr,
             const TokenCallback& on_token = nullptr, int64_t first_position = 0);

  uint32_t num_stages() const { return num_stages_; }
  kernels::KernelPaths kernel_paths() const { return paths_; }
  uint64_t shared_memory_bytes() const { return smem_bytes_; }
  const TaskGraph& task_graph() const { return tg_; }

 private:
  struct Device;
  explicit DeviceProgram(const TaskGraph& tg, const DeviceProgramOptions& options);
  Status validate_and_plan();
  Status check_cache_staging() const;
  Status allocate_and_upload();
  Status fault_report() const;
  Status prepare_dynamic_launch(kernels::MegakernelArgs& args, int64_t first_step, int64_t end_step);
  Status capture_op_graph(const kernels::QueueEntry* entries, const uint32_t* queue_begin);

  TaskGraph tg_;
  DeviceProgramOptions options_;
  std::vector<ClaimedOp> claimed_;  // empty when claims are off
  std::unique_ptr<Device> dev_;
  std::vector<uint64_t> buffer_offset_;  // each buffer's place in the arena
  // Dynamic mode: the queue entries (and their workers) ready at every launch's first step.
  std::vector<std::pair<uint32_t, uint32_t>> dynamic_seeds_;
  uint32_t scratch_floats_ = 0, num_stages_ = 0;
  uint64_t smem_bytes_ = 0;
  kernels::KernelPaths paths_{};  // kGeneral until validate_and_plan()
  bool broken_ = false;
};

}  // namespace megalith::cuda
