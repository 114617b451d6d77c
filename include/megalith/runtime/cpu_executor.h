// The CPU executor: threads play the worker SMs (and, in dynamic mode, the scheduler warps)
// with exactly the event and queue protocol of the megakernel, on std::atomic
// acquire/release. Every task runs its CPU reference (src/runtime/cpu/tasks/), so results
// are identical for every thread count, schedule and seed (the task graph, compiled for a
// number of workers, fixes the numerics).
//
//   MEGALITH_ASSIGN_OR_RETURN(auto exec, CpuExecutor::create(tg, *ckpt, {}));
//   MEGALITH_RETURN_IF_ERROR(exec->start_sequence(prompt));
//   MEGALITH_RETURN_IF_ERROR(exec->run(prompt.size() + 15));   // one launch, 16 new tokens
//   int32_t first_new = exec->token(prompt.size() - 1);
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "megalith/compiler/task_graph.h"
#include "megalith/core/status.h"
#include "megalith/model/checkpoint.h"
#include "megalith/runtime/executor.h"

namespace megalith {

struct CpuExecutorOptions {
  SchedulingMode mode = SchedulingMode::kStatic;
  // Threads that play the task graph's workers, each thread taking turns among its workers'
  // queues; 0: one per worker up to the machine's cores. Results do not depend on it.
  int32_t threads = 0;
  int32_t scheduler_threads = 1;  // dynamic mode
  uint64_t shuffle_seed = 0;      // non-zero: random delays and, in dynamic mode, random placement
  double deadlock_timeout_s = 20.0;
  // Race testing: refill the activation arena with NaN at the start of every step (when the
  // source task runs, nothing else can), and hold these tasks back before they run, so a
  // missing dependency makes its consumer read garbage.
  bool poison_each_step = false;
  std::vector<uint32_t> slow_tasks;
  double slow_task_ms = 20.0;
};

class CpuExecutor : public Executor {
 public:
  // Binds the task graph's weight buffers to the checkpoint (which must outlive the executor)
  // and allocates the rest. The task graph is copied.
  static StatusOr<std::unique_ptr<CpuExecutor>> create(const TaskGraph& tg, const Checkpoint& ckpt,
                                                       const CpuExecutorOptions& options);
  ~CpuExecutor();

  const TaskGraph& task_graph() const override { return tg_; }

 protected:
  Status launch(std::span<const abi::StepControl> controls, std::span<const int32_t> prompts,
                int64_t first_step, int64_t steps, int64_t first_position) override;
  const int32_t* tokens_row(int32_t slot) const override;
  const float* logprobs_row(int32_t slot) const override;
  const float* logits_row(int32_t slot) const override;

 private:
  struct Runtime;
  CpuExecutor(const TaskGraph& tg, const CpuExecutorOptions& options);
  Status bind(const Checkpoint& ckpt);
  uint8_t* io_buffer(const char* name) const { return base_[tg_.find_buffer(name)]; }

  TaskGraph tg_;
  CpuExecutorOptions options_;
  std::vector<std::vector<uint8_t>> owned_;  // state, activation, io and constant buffers
  std::vector<uint8_t*> base_;               // every buffer's base pointer
  std::unique_ptr<Runtime> runtime_;         // event counters and queues; persist across launches
};

}  // namespace megalith
