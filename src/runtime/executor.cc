#include "megalith/runtime/executor.h"

namespace megalith {

Status Executor::start_sequence(std::span<const int32_t> prompt, double temperature,
                                uint64_t seed) {
  const TaskGraph& tg = task_graph();
  if (prompt.empty()) return invalid_argument("the prompt must hold at least one token");
  if (int64_t(prompt.size()) > tg.max_seq_len) {
    return invalid_argument("the prompt has {} tokens; the KV cache holds {}", prompt.size(),
                            tg.max_seq_len);
  }
  for (int32_t id : prompt) {
    if (id < 0 || id >= tg.vocab_size) {
      return invalid_argument("token id {} is outside the vocabulary [0, {})", id, tg.vocab_size);
    }
  }
  if (!(temperature >= 0 && temperature <= 100)) {
    return invalid_argument("temperature must be between 0 and 100, got {}", temperature);
  }
  return begin_sequence(prompt, temperature, seed);
}

abi::StepControl Executor::sequence_control(int64_t first_step, size_t prompt_tokens,
                                            double temperature, uint64_t seed) {
  abi::StepControl control{};
  control.first_step = int32_t(first_step);
  control.num_prompt = int32_t(prompt_tokens);
  control.temperature = float(temperature);
  control.seed_lo = uint32_t(seed);
  control.seed_hi = uint32_t(seed >> 32);
  return control;
}

}  // namespace megalith
