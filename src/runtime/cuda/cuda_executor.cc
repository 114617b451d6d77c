#include "megalith/runtime/cuda_executor.h"

#include <algorithm>
#include <limits>

#include "device_program.h"
#include "megalith/model/model_graph.h"
#include "megalith/model/random_checkpoint.h"

namespace megalith {

CudaExecutor::CudaExecutor(const TaskGraph& tg, std::unique_ptr<cuda::DeviceProgram> program)
    : tg_(tg), program_(std::move(program)) {}

CudaExecutor::~CudaExecutor() = default;

StatusOr<std::unique_ptr<CudaExecutor>> CudaExecutor::create_program(
    const TaskGraph& tg, int64_t vocab_size, const CudaExecutorOptions& options) {
  if (tg.vocab_size != vocab_size) {
    return invalid_argument("the task graph was compiled for a vocabulary of {}, the model has {}",
                            tg.vocab_size, vocab_size);
  }
  for (const char* name : {"control", "prompt", "tokens", "logprobs", "logits"}) {
    if (tg.find_buffer(name) == abi::kNoBuffer) {
      return invalid_argument("the task graph has no '{}' buffer", name);
    }
  }
  MEGALITH_ASSIGN_OR_RETURN(
      std::unique_ptr<cuda::DeviceProgram> program,
      cuda::DeviceProgram::create(
          tg, {options.device, options.watchdog_timeout_s, options.per_thread_release,
               options.max_stages, options.mode == SchedulingMode::kDynamic,
               options.kernel_per_op, options.claim_rows}));
  auto exec = std::unique_ptr<CudaExecutor>(new CudaExecutor(tg, std::move(program)));
  exec->on_token_ = options.on_token;
  return exec;
}

StatusOr<std::unique_ptr<CudaExecutor>> CudaExecutor::create(const TaskGraph& tg,
                                                             const Checkpoint& ckpt,
                                                             const CudaExecutorOptions& options) {
  MEGALITH_ASSIGN_OR_RETURN(auto exec, create_program(tg, ckpt.config().vocab_size, options));
  MEGALITH_RETURN_IF_ERROR(exec->bind(ckpt, options.on_upload));
  MEGALITH_RETURN_IF_ERROR(exec->bind_io());
  return exec;
}

StatusOr<std::unique_ptr<CudaExecutor>> CudaExecutor::create_random(
    const TaskGraph& tg, const ModelConfig& cfg, uint64_t seed, const CudaExecutorOptions& options) {
  MEGALITH_ASSIGN_OR_RETURN(auto exec, create_program(tg, cfg.vocab_size, options));
  MEGALITH_RETURN_IF_ERROR(exec->bind_random(cfg, seed));
  MEGALITH_RETURN_IF_ERROR(exec->bind_io());
  return exec;
}

namespace {

// The weight spec of weight buffer `desc`, checked against the task graph's expectation.
StatusOr<const WeightSpec*> find_weight(const std::vector<WeightSpec>& specs, const BufferDesc& desc,
                                        DType dtype) {
  const auto it = std::find_if(specs.begin(), specs.end(),
                               [&](const WeightSpec& s) { return s.name == desc.name; });
  if (it == specs.end()) return not_found("the model has no weight '{}'", desc.name);
  int64_t elements = 1;
  for (int64_t d : it->shape) elements *= d;
  if (uint64_t(elements) * dtype_size(dtype) != desc.bytes || elem_type(dtype) != desc.type) {
    return invalid_argument("weight '{}' is {} elements of {}, the task graph expects {} bytes of "
                            "{}", desc.name, elements, dtype_short_name(dtype), desc.bytes,
                            elem_type_name(desc.type));
  }
  return &*it;
}

}  // namespace

uint32_t CudaExecutor::ring_stages() const { return program_->num_stages(); }

Status CudaExecutor::bind(const Checkpoint& ckpt,
                          const std::function<void(uint64_t, uint64_t)>& on_upload) {
  const std::vector<WeightSpec> specs = model_weight_specs(ckpt.config());
  uint64_t total = 0, done = 0;
  for (const BufferDesc& desc : tg_.buffers) {
    if (desc.kind == BufferKind::kWeight) total += desc.bytes;
  }
  for (uint32_t b = 0; b < tg_.buffers.size(); ++b) {
    const BufferDesc& desc = tg_.buffers[b];
    if (desc.kind != BufferKind::kWeight) continue;
    const bool known = std::any_of(specs.begin(), specs.end(),
                                   [&](const WeightSpec& s) { return s.name == desc.name; });
    if (!known) return not_found("the checkpoint has no weight '{}'", desc.name);
    const TensorView w = ckpt.weight(desc.name);
    if (w.nbytes() != desc.bytes || elem_type(w.dtype) != desc.type) {
      return invalid_argument("weight '{}' is {} bytes of {}, the task graph expects {} bytes "
                              "of {}", desc.name, w.nbytes(), dtype_short_name(w.dtype),
                              desc.bytes, elem_type_name(desc.type));
    }
    MEGALITH_RETURN_IF_ERROR(program_->write(b, w.data, w.nbytes()).with_context(desc.name));
    done += desc.bytes;
    if (on_upload) on_upload(done, total);
  }
  return {};
}

Status CudaExecutor::bind_random(const ModelConfig& cfg, uint64_t seed) {
  const std::vector<WeightSpec> specs = model_weight_specs(cfg);
  for (uint32_t b = 0; b < tg_.buffers.size(); ++b) {
    const BufferDesc& desc = tg_.buffers[b];
    if (desc.kind != BufferKind::kWeight) continue;
    MEGALITH_ASSIGN_OR_RETURN(const WeightSpec* spec, find_weight(specs, desc, cfg.dtype));
    MEGALITH_RETURN_IF_ERROR(
        program_->fill_random(b, random_weight_params(seed, spec->name, spec->shape))
            .with_context(desc.name));
  }
  return {};
}

Status CudaExecutor::bind_io() {
  control_buffer_ = tg_.find_buffer("control");
  prompt_buffer_ = tg_.find_buffer("prompt");
  tokens_buffer_ = tg_.find_buffer("tokens");
  logprobs_buffer_ = tg_.find_buffer("logprobs");
  logits_buffer_ = tg_.find_buffer("logits");
  prompt_.assign(size_t(tg_.max_seq_len), 0);
  tokens_.assign(size_t(tg_.max_seq_len), 0);
  logprobs_.assign(size_t(tg_.max_seq_len), 0.0f);
  logits_.assign(size_t(tg_.vocab_size), 0.0f);
  return {};
}

Status CudaExecutor::begin_sequence(std::span<const int32_t> prompt, double temperature,
                                    uint64_t seed) {
  if (poisoned_) return invalid_argument("the executor stopped after an error; create a new one");
  control_ = sequence_control(next_step_, prompt.size(), temperature, seed);
  std::copy(prompt.begin(), prompt.end(), prompt_.begin());
  position_ = 0;
  return {};
}

Status CudaExecutor::force_token(int32_t token) {
  if (token < 0 || token >= tg_.vocab_size) {
    return invalid_argument("token id {} is outside the vocabulary [0, {})", token, tg_.vocab_size);
  }
  if (control_.num_prompt != position_ || position_ >= tg_.max_seq_len) {
    return invalid_argument("a token can be forced only at the next position to compute");
  }
  prompt_[size_t(control_.num_prompt++)] = token;
  return {};
}

Status CudaExecutor::run_traced(int64_t steps, std::vector<TaskTiming>* timings) {
  if (poisoned_) return invalid_argument("the executor stopped after an error; create a new one");
  if (steps < 0) return invalid_argument("steps must not be negative");
  if (control_.num_prompt == 0) return invalid_argument("start a sequence before running");
  if (position_ + steps > tg_.max_seq_len) {
    return invalid_argument("{} more steps would pass the {} positions of the KV cache", steps,
                            tg_.max_seq_len);
  }
  if (next_step_ + steps >= int64_t(std::numeric_limits<int32_t>::max())) {
    return invalid_argument("the executor has run out of step numbers; create a new one");
  }
  if (steps == 0) return {};
  poisoned_ = true;  // until the launch and its copies have succeeded
  MEGALITH_RETURN_IF_ERROR(program_->write(control_buffer_, &control_, sizeof(control_)));
  MEGALITH_RETURN_IF_ERROR(
      program_->write(prompt_buffer_, prompt_.data(), size_t(control_.num_prompt) * 4));
  MEGALITH_RETURN_IF_ERROR(
      program_->run(next_step_, next_step_ + steps, timings, on_token_, position_));
  MEGALITH_RETURN_IF_ERROR(program_->read(tokens_buffer_, tokens_.data(), tokens_.size() * 4));
  MEGALITH_RETURN_IF_ERROR(
      program_->read(logprobs_buffer_, logprobs_.data(), logprobs_.size() * 4));
  MEGALITH_RETURN_IF_ERROR(program_->read(logits_buffer_, logits_.data(), logits_.size() * 4));
  poisoned_ = false;
  next_step_ += steps;
  position_ += steps;
  return {};
}

int32_t CudaExecutor::token(int64_t p) const {
  MEGALITH_CHECK(p >= 0 && p < position_, "position {} not computed", p);
  return tokens_[size_t(p)];
}

float CudaExecutor::logprob(int64_t p) const {
  MEGALITH_CHECK(p >= 0 && p < position_, "position {} not computed", p);
  return logprobs_[size_t(p)];
}

}  // namespace megalith
