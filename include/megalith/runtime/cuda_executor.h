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
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "megalith/abi/task_abi.h"
#include "megalith/compiler/task_graph.h"
#include "megalith/core/status.h"
#include "megalith/model/checkpoint.h"
#include "megalith/model/config.h"
#include "megalith/runtime/executor.h"
#include "megalith/runtime/trace.h"

namespace megalith {

namespace cuda {
class DeviceProgram;
}

struct CudaExecutorOptions {
  SchedulingMode mode = SchedulingMode::kStatic;
  int32_t device = 0;
  // A worker spinning this long on one event ends the launch with an error naming the task
  // and the event, instead of hanging; 0 waits forever.
  double watchdog_timeout_s = 20.0;
  // Every consumer thread, not one per warp, frees the ring's stages: slower, and what
  // compute-sanitizer racecheck can follow. MEGALITH_PER_THREAD_RELEASE=1 sets it too.
  bool per_thread_release = false;
  uint32_t max_stages = 0;  // weight ring stages (as many as fit, up to this); 0: 3, the fastest
  // The megakernel's ablation: the same tasks, one kernel launch per fused op, a step's
  // launches replayed from a CUDA graph (static mode only; run_traced() records no trace).
  bool kernel_per_op = false;
  // Static mode: the linear ops the compiler marked deal their rows out at run time
  // (compiler/claimed_rows.h); false runs every task on its own tile.
  bool claim_rows = true;
  // Runs bf16 decode graphs on the general kernel too, not the one compiled for them alone
  // (for A/B runs and tests of the general kernel).
  bool general_paths = false;
  // Called as create() uploads a checkpoint's weights: bytes done so far and in all, after
  // each weight (a progress bar's feed).
  std::function<void(uint64_t done, uint64_t total)> on_upload;
  // Called during each run() with every position it computes, in order, as soon as the kernel
  // has published the position's token to host-mapped memory: tokens stream while the one
  // launch still runs.
  std::function<void(int64_t position, int32_t token, float logprob)> on_token;
};

class CudaExecutor : public Executor {
 public:
  // Uploads the checkpoint's weights (which need not outlive the executor) and the task graph
  // to the GPU, and allocates the state, activation and io buffers there.
  static StatusOr<std::unique_ptr<CudaExecutor>> create(const TaskGraph& tg, const Checkpoint& ckpt,
                                                        const CudaExecutorOptions& options);
  ~CudaExecutor();

  // A model with megalith's random weights for `seed` (abi/random_weight.h), generated on the
  // GPU: the same model as `megalith make-checkpoint --seed` writes, with no file to read.
  static StatusOr<std::unique_ptr<CudaExecutor>> create_random(const TaskGraph& tg,
                                                               const ModelConfig& cfg,
                                                               uint64_t seed,
                                                               const CudaExecutorOptions& options);

  // One cooperative launch of `steps` steps (Executor::run), recording every task's wait and
  // finish times when `timings` is given (for profiling; it costs a little).
  Status run_traced(int64_t steps, std::vector<TaskTiming>* timings);

  const TaskGraph& task_graph() const override { return tg_; }
  uint32_t ring_stages() const;  // the weight ring's shared-memory stages per worker
  // Whether launches run the kernel compiled for bf16 decode alone (bf16 weights and caches,
  // batch 1, static mode, unclaimed tiles) rather than the general one.
  bool bf16_decode_kernel() const;

 protected:
  Status launch(std::span<const abi::StepControl> controls, std::span<const int32_t> prompts,
                int64_t first_step, int64_t steps, int64_t first_position) override;
  const int32_t* tokens_row(int32_t slot) const override;
  const float* logprobs_row(int32_t slot) const override;
  const float* logits_row(int32_t slot) const override;

 private:
  CudaExecutor(const TaskGraph& tg, std::unique_ptr<cuda::DeviceProgram> program);
  static StatusOr<std::unique_ptr<CudaExecutor>> create_program(
      const TaskGraph& tg, int64_t vocab_size, const CudaExecutorOptions& options);
  Status bind(const Checkpoint& ckpt, const std::function<void(uint64_t, uint64_t)>& on_upload);
  Status bind_random(const ModelConfig& cfg, uint64_t seed);
  Status bind_io();

  TaskGraph tg_;
  std::unique_ptr<cuda::DeviceProgram> program_;
  uint32_t control_buffer_ = abi::kNoBuffer, prompt_buffer_ = abi::kNoBuffer;
  uint32_t tokens_buffer_ = abi::kNoBuffer, logprobs_buffer_ = abi::kNoBuffer;
  uint32_t logits_buffer_ = abi::kNoBuffer;
  // Host copies of the io buffers that come back after a launch.
  std::vector<int32_t> tokens_;
  std::vector<float> logprobs_, logits_;
  std::vector<TaskTiming>* timings_ = nullptr;  // run_traced's, during its launch
  std::function<void(int64_t, int32_t, float)> on_token_;
};

}  // namespace megalith
