// What every executor of a compiled task graph offers the engine (the CPU threads and the CUDA
// megakernel alike): sequences of positions decoded in launches of many steps, the sampled
// token of each position, its log-probability, and the last logits.
//
//   MEGALITH_RETURN_IF_ERROR(exec.start_sequence(prompt));
//   MEGALITH_RETURN_IF_ERROR(exec.run(prompt.size() + 15));   // one launch, 16 new tokens
//   int32_t first_new = exec.token(prompt.size() - 1);
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "megalith/abi/task_abi.h"
#include "megalith/compiler/task_graph.h"
#include "megalith/core/status.h"

namespace megalith {

enum class SchedulingMode { kStatic, kDynamic };
std::string_view scheduling_mode_name(SchedulingMode m);  // "static", "dynamic"

class Executor {
 public:
  virtual ~Executor() = default;

  // Starts a new sequence at the next step: `prompt` are the tokens forced at positions
  // 0..n-1; later positions take the sampled token (greedy at temperature 0, else Gumbel-max
  // with `seed`).
  Status start_sequence(std::span<const int32_t> prompt, double temperature = 0.0,
                        uint64_t seed = 0);
  // Forces the token at the next position not yet forced (host-side sampling).
  virtual Status force_token(int32_t token) = 0;
  // One launch: `steps` steps, each one position of the sequence.
  virtual Status run(int64_t steps) = 0;

  virtual int64_t position() const = 0;  // positions computed so far
  int64_t max_positions() const { return task_graph().max_seq_len; }
  // The token that follows position p (forced or sampled), and its log-probability.
  virtual int32_t token(int64_t p) const = 0;
  virtual float logprob(int64_t p) const = 0;
  // The logits of the last position computed.
  virtual std::span<const float> logits() const = 0;
  virtual const TaskGraph& task_graph() const = 0;

 protected:
  // Called with a prompt and temperature start_sequence has checked; `control` is the new
  // sequence's control block for the executor's next step number.
  virtual Status begin_sequence(std::span<const int32_t> prompt, double temperature,
                                uint64_t seed) = 0;
  static abi::StepControl sequence_control(int64_t first_step, size_t prompt_tokens,
                                           double temperature, uint64_t seed);
};

}  // namespace megalith
