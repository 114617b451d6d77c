// The CUDA executor: the compiled task graph run by the persistent megakernel, one worker CTA
// per SM, with the same event and queue protocol and the same interface as CpuExecutor. One
// run() is one cooperative launch covering many decode steps; the sampled token feeds the
// next step's embedding inside the kernel. Available when megalith is built with nvcc; every
// CUDA failure comes back as a Status.
//
//   MEGALITH_ASSIGN_OR_RETURN(TaskGraph tg, compile(g, cfg, {.num_workers = 132}));
//   MEGALITH_ASSIGN_OR_RETURN(auto exec, CudaExecutor::create(tg, *ckpt, {}));
//   MEGALITH_RETURN_IF_ERROR(exec->start_sequence(prompt, {}));
//   MEGALITH_RETURN_IF_ERROR(exec->run(prompt.size() + 15));   // one launch, 16 new tokens
//   int32_t first_new = exec->token(prompt.size() - 1);
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "megalith/abi/task_abi.h"
#include "megalith/compiler/task_graph.h"
#include "megalith/core/status.h"
#include "megalith/model/checkpoint.h"
#include "megalith/runtime/cpu_executor.h"

namespace megalith {

namespace cuda {
class DeviceProgram;
}

struct CudaExecutorOptions {
  SchedulingMode mode = SchedulingMode::kStatic;  // only static mode is implemented
  int32_t device = 0;
  // A worker spinning this long on one event ends the launch with an error naming the task
  // and the event, instead of hanging; 0 waits forever.
  double watchdog_timeout_s = 20.0;
};

// One task at one step of a traced launch, in nanoseconds of the GPU's global timer: when its
// wait began, when its events were ready, and when it had signalled its own.
struct TaskTiming {
  uint32_t task = 0, worker = 0;
  int64_t step = 0;
  uint64_t wait_ns = 0, ready_ns = 0, done_ns = 0;
};

class CudaExecutor {
 public:
  // Uploads the checkpoint's weights (which need not outlive the executor) and the task graph
  // to the GPU, and allocates the state, activation and io buffers there.
  static StatusOr<std::unique_ptr<CudaExecutor>> create(const TaskGraph& tg, const Checkpoint& ckpt,
                                                        const CudaExecutorOptions& options);
  ~CudaExecutor();

  // As CpuExecutor: a new sequence at the next step, `prompt` forced at positions 0..n-1.
  Status start_sequence(std::span<const int32_t> prompt, double temperature = 0.0,
                        uint64_t seed = 0);
  // Forces the token at the next position not yet forced (host-side sampling).
  Status force_token(int32_t token);
  // One launch: `steps` steps, each one position of the sequence. With `timings`, every
  // task's wait and finish times are recorded too (for profiling; it costs a little).
  Status run(int64_t steps, std::vector<TaskTiming>* timings = nullptr);

  int64_t position() const { return position_; }
  int64_t max_positions() const { return tg_.max_seq_len; }
  // The token that follows position p (forced or sampled), and its log-probability.
  int32_t token(int64_t p) const;
  float logprob(int64_t p) const;
  // The logits of the last position computed.
  std::span<const float> logits() const { return logits_; }
  const TaskGraph& task_graph() const { return tg_; }

 private:
  CudaExecutor(const TaskGraph& tg, std::unique_ptr<cuda::DeviceProgram> program);
  Status bind(const Checkpoint& ckpt);

  TaskGraph tg_;
  std::unique_ptr<cuda::DeviceProgram> program_;
  uint32_t control_buffer_ = abi::kNoBuffer, prompt_buffer_ = abi::kNoBuffer;
  uint32_t tokens_buffer_ = abi::kNoBuffer, logprobs_buffer_ = abi::kNoBuffer;
  uint32_t logits_buffer_ = abi::kNoBuffer;
  // Host copies of the io buffers: control and prompt go up before a launch, tokens,
  // log-probabilities and logits come back after it.
  abi::StepControl control_{};
  std::vector<int32_t> prompt_, tokens_;
  std::vector<float> logprobs_, logits_;
  int64_t next_step_ = 0, position_ = 0;
  bool poisoned_ = false;
};

}  // namespace megalith
