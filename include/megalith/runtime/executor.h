// What every executor of a compiled task graph offers the engine (the CPU threads and the CUDA
// megakernel alike): sequences decoded in launches of many steps, the sampled token of each
// position, its log-probability, and the last logits. A task graph compiled for batch B has B
// slots, each holding one sequence (or idle); a step decodes one position of every slot.
//
//   MEGALITH_RETURN_IF_ERROR(exec.start_sequence(prompt));      // slot 0
//   MEGALITH_RETURN_IF_ERROR(exec.run(prompt.size() + 15));      // one launch, 16 new tokens
//   int32_t first_new = exec.token(prompt.size() - 1);
//
//   MEGALITH_RETURN_IF_ERROR(exec.start_sequence(other, 0.0, 0, /*slot=*/1));  // joins now
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "megalith/abi/task_abi.h"
#include "megalith/compiler/task_graph.h"
#include "megalith/core/status.h"
#include "megalith/core/tensor.h"

namespace megalith {

class Checkpoint;

enum class SchedulingMode { kStatic, kDynamic };
std::string_view scheduling_mode_name(SchedulingMode m);  // "static", "dynamic"

class Executor {
 public:
  virtual ~Executor() = default;

  int32_t batch() const { return task_graph().batch; }  // slots
  int64_t max_positions() const { return task_graph().max_seq_len; }

  // Starts a new sequence in `slot` at the next step: `prompt` are the tokens forced at
  // positions 0..n-1; later positions take the sampled token (greedy at temperature 0, else
  // Gumbel-max with `seed`). Whatever the slot held is dropped.
  Status start_sequence(std::span<const int32_t> prompt, double temperature = 0.0,
                        uint64_t seed = 0, int32_t slot = 0);
  // The slot idles from the next step on (its rows are computed and ignored).
  Status end_sequence(int32_t slot = 0);
  // Forces the token at the slot's next position not yet forced (host-side sampling).
  Status force_token(int32_t token, int32_t slot = 0);
  // One launch: `steps` steps, each one position of every slot's sequence. Every active
  // slot's sequence must have room for them.
  Status run(int64_t steps);

  bool active(int32_t slot) const;
  int64_t position(int32_t slot = 0) const;  // positions the slot's sequence has computed
  // The token that follows position p (forced or sampled), and its log-probability.
  int32_t token(int64_t p, int32_t slot = 0) const;
  float logprob(int64_t p, int32_t slot = 0) const;
  // The logits of the slot's last position computed.
  std::span<const float> logits(int32_t slot = 0) const;
  virtual const TaskGraph& task_graph() const = 0;

 protected:
  // Whether the task graph has the io buffers, each sized for its slots.
  static Status check_io_buffers(const TaskGraph& tg);
  // The checkpoint's weight for weight buffer `desc`, an error where the checkpoint has none
  // by that name or its bytes or element type are not the buffer's.
  static StatusOr<TensorView> checkpoint_weight(const Checkpoint& ckpt, const BufferDesc& desc);
  // Sizes the slots' host state; the derived class calls it once its task graph is set.
  void init_slots();
  // Runs global steps [first_step, first_step + steps) with these control blocks (one per
  // slot) and prompts (a row of max_positions() per slot); afterwards the rows below hold its
  // results. `first_position` is slot 0's position at the launch (for streaming).
  virtual Status launch(std::span<const abi::StepControl> controls,
                        std::span<const int32_t> prompts, int64_t first_step, int64_t steps,
                        int64_t first_position) = 0;
  // The last launch's results of a slot: its row of sampled tokens, of log-probabilities
  // (max_positions() each) and its logits (the vocabulary).
  virtual const int32_t* tokens_row(int32_t slot) const = 0;
  virtual const float* logprobs_row(int32_t slot) const = 0;
  virtual const float* logits_row(int32_t slot) const = 0;

 private:
  Status check_slot(int32_t slot) const;

  std::vector<abi::StepControl> controls_;
  std::vector<int32_t> prompts_;   // [slot][max_positions()]
  std::vector<int64_t> positions_;
  int64_t next_step_ = 0;
  bool poisoned_ = false;
};

}  // namespace megalith
