#include "megalith/runtime/executor.h"

#include <algorithm>
#include <limits>

#include "megalith/model/checkpoint.h"

namespace megalith {

Status Executor::check_io_buffers(const TaskGraph& tg) {
  if (tg.batch < 1) return invalid_argument("the task graph's batch is {}; it must be positive", tg.batch);
  const uint64_t slots = uint64_t(std::max(tg.batch, 0)), rows = slots * uint64_t(tg.max_seq_len);
  const std::pair<const char*, uint64_t> expected[] = {
      {"control", slots * sizeof(abi::StepControl)}, {"prompt", rows * 4},
      {"tokens", rows * 4}, {"logprobs", rows * 4},
      {"logits", slots * uint64_t(tg.vocab_size) * 4}};
  for (const auto& [name, bytes] : expected) {
    const uint32_t b = tg.find_buffer(name);
    if (b == abi::kNoBuffer) return invalid_argument("the task graph has no '{}' buffer", name);
    if (tg.buffers[b].bytes != bytes) {
      return invalid_argument("the task graph's '{}' buffer is {} bytes; batch {} needs {}", name,
                              tg.buffers[b].bytes, tg.batch, bytes);
    }
  }
  return {};
}

StatusOr<TensorView> Executor::checkpoint_weight(const Checkpoint& ckpt, const BufferDesc& desc) {
  const TensorView* w = ckpt.find_weight(desc.name);
  if (!w) return not_found("the checkpoint has no weight '{}'", desc.name);
  if (w->nbytes() != desc.bytes || elem_type(w->dtype) != desc.type) {
    return invalid_argument("weight '{}' is {} bytes of {}, the task graph expects {} bytes of {}",
                            desc.name, w->nbytes(), dtype_short_name(w->dtype), desc.bytes,
                            elem_type_name(desc.type));
  }
  return *w;
}

void Executor::init_slots() {
  const TaskGraph& tg = task_graph();
  controls_.assign(size_t(tg.batch), abi::StepControl{});
  prompts_.assign(size_t(tg.batch) * size_t(tg.max_seq_len), 0);
  positions_.assign(size_t(tg.batch), 0);
}

Status Executor::check_slot(int32_t slot) const {
  if (slot < 0 || slot >= batch()) {
    return invalid_argument("slot {} does not exist; the task graph has {} (batch)", slot, batch());
  }
  return {};
}

Status Executor::start_sequence(std::span<const int32_t> prompt, double temperature,
                                uint64_t seed, int32_t slot) {
  const TaskGraph& tg = task_graph();
  MEGALITH_RETURN_IF_ERROR(check_slot(slot));
  if (poisoned_) return invalid_argument("the executor stopped after an error; create a new one");
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
  abi::StepControl& c = controls_[size_t(slot)];
  c = {};
  c.first_step = int32_t(next_step_);
  c.num_prompt = int32_t(prompt.size());
  c.temperature = float(temperature);
  c.seed_lo = uint32_t(seed);
  c.seed_hi = uint32_t(seed >> 32);
  c.active = 1;
  std::copy(prompt.begin(), prompt.end(), prompts_.begin() + int64_t(slot) * tg.max_seq_len);
  positions_[size_t(slot)] = 0;
  return {};
}

Status Executor::end_sequence(int32_t slot) {
  MEGALITH_RETURN_IF_ERROR(check_slot(slot));
  controls_[size_t(slot)] = {};
  positions_[size_t(slot)] = 0;
  return {};
}

Status Executor::force_token(int32_t token, int32_t slot) {
  MEGALITH_RETURN_IF_ERROR(check_slot(slot));
  const TaskGraph& tg = task_graph();
  if (token < 0 || token >= tg.vocab_size) {
    return invalid_argument("token id {} is outside the vocabulary [0, {})", token, tg.vocab_size);
  }
  abi::StepControl& c = controls_[size_t(slot)];
  const int64_t position = positions_[size_t(slot)];
  if (!c.active || c.num_prompt != position || position >= tg.max_seq_len) {
    return invalid_argument("a token can be forced only at the next position to compute");
  }
  prompts_[size_t(int64_t(slot) * tg.max_seq_len + c.num_prompt++)] = token;
  return {};
}

Status Executor::run(int64_t steps) {
  const TaskGraph& tg = task_graph();
  if (poisoned_) return invalid_argument("the executor stopped after an error; create a new one");
  if (steps < 0) return invalid_argument("steps must not be negative");
  if (std::none_of(controls_.begin(), controls_.end(), [](const auto& c) { return c.active; })) {
    return invalid_argument("start a sequence before running");
  }
  for (int32_t slot = 0; slot < batch(); ++slot) {
    if (active(slot) && position(slot) + steps > tg.max_seq_len) {
      return invalid_argument("{} more steps would pass the {} positions of the KV cache", steps,
                              tg.max_seq_len);
    }
  }
  if (next_step_ + steps >= int64_t(std::numeric_limits<int32_t>::max())) {
    return invalid_argument("the executor has run out of step numbers; create a new one");
  }
  if (steps == 0) return {};
  if (Status s = launch(controls_, prompts_, next_step_, steps, positions_[0]); !s.ok()) {
    poisoned_ = true;
    return s;
  }
  next_step_ += steps;
  for (int32_t slot = 0; slot < batch(); ++slot) {
    if (active(slot)) positions_[size_t(slot)] += steps;
  }
  return {};
}

bool Executor::active(int32_t slot) const {
  MEGALITH_CHECK(slot >= 0 && slot < batch(), "slot {} does not exist", slot);
  return controls_[size_t(slot)].active != 0;
}

int64_t Executor::position(int32_t slot) const {
  MEGALITH_CHECK(slot >= 0 && slot < batch(), "slot {} does not exist", slot);
  return positions_[size_t(slot)];
}

int32_t Executor::token(int64_t p, int32_t slot) const {
  MEGALITH_CHECK(slot >= 0 && slot < batch() && p >= 0 && p < position(slot),
                 "slot {} position {} not computed", slot, p);
  return tokens_row(slot)[p];
}

float Executor::logprob(int64_t p, int32_t slot) const {
  MEGALITH_CHECK(slot >= 0 && slot < batch() && p >= 0 && p < position(slot),
                 "slot {} position {} not computed", slot, p);
  return logprobs_row(slot)[p];
}

std::span<const float> Executor::logits(int32_t slot) const {
  MEGALITH_CHECK(slot >= 0 && slot < batch(), "slot {} does not exist", slot);
  return {logits_row(slot), size_t(task_graph().vocab_size)};
}

}  // namespace megalith
