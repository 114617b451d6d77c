#include "megalith/runtime/cuda_executor.h"

#include <algorithm>
#include <limits>

#include "device_program.h"
#include "megakernel/layout.h"
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
  MEGALITH_RETURN_IF_ERROR(check_io_buffers(tg));
  if (options.on_token && tg.batch > 1) {
    return invalid_argument("on_token streams a single sequence; this task graph has batch {}",
                            tg.batch);
  }
  MEGALITH_ASSIGN_OR_RETURN(
      std::unique_ptr<cuda::DeviceProgram> program,
      cuda::DeviceProgram::create(
          tg, {options.device, options.watchdog_timeout_s, options.per_thread_release,
               options.max_stages, options.mode == SchedulingMode::kDynamic,
               options.kernel_per_op, options.claim_rows, options.general_paths}));
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
bool CudaExecutor::bf16_decode_kernel() const {
  return program_->kernel_paths() == kernels::KernelPaths::kBf16Decode;
}

Status CudaExecutor::bind(const Checkpoint& ckpt,
                          const std::function<void(uint64_t, uint64_t)>& on_upload) {
  uint64_t total = 0, done = 0;
  for (const BufferDesc& desc : tg_.buffers) {
    if (desc.kind == BufferKind::kWeight) total += desc.bytes;
  }
  for (uint32_t b = 0; b < tg_.buffers.size(); ++b) {
    const BufferDesc& desc = tg_.buffers[b];
    if (desc.kind != BufferKind::kWeight) continue;
    MEGALITH_ASSIGN_OR_RETURN(const TensorView w, checkpoint_weight(ckpt, desc));
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
  const size_t rows = size_t(tg_.batch) * size_t(tg_.max_seq_len);
  tokens_.assign(rows, 0);
  logprobs_.assign(rows, 0.0f);
  logits_.assign(size_t(tg_.batch) * size_t(tg_.vocab_size), 0.0f);
  init_slots();
  return {};
}

Status CudaExecutor::run_traced(int64_t steps, std::vector<TaskTiming>* timings) {
  timings_ = timings;
  Status status = run(steps);
  timings_ = nullptr;
  return status;
}

Status CudaExecutor::launch(std::span<const abi::StepControl> controls,
                            std::span<const int32_t> prompts, int64_t first_step, int64_t steps,
                            int64_t first_position) {
  MEGALITH_RETURN_IF_ERROR(program_->write(control_buffer_, controls.data(), controls.size_bytes()));
  for (size_t slot = 0; slot < controls.size(); ++slot) {  // the forced tokens only
    const size_t row = slot * size_t(tg_.max_seq_len);
    MEGALITH_RETURN_IF_ERROR(program_->write(prompt_buffer_, prompts.data() + row,
                                             size_t(controls[slot].num_prompt) * 4, row * 4));
  }
  MEGALITH_RETURN_IF_ERROR(
      program_->run(first_step, first_step + steps, timings_, on_token_, first_position));
  MEGALITH_RETURN_IF_ERROR(program_->read(tokens_buffer_, tokens_.data(), tokens_.size() * 4));
  MEGALITH_RETURN_IF_ERROR(
      program_->read(logprobs_buffer_, logprobs_.data(), logprobs_.size() * 4));
  return program_->read(logits_buffer_, logits_.data(), logits_.size() * 4);
}

const int32_t* CudaExecutor::tokens_row(int32_t slot) const {
  return tokens_.data() + int64_t(slot) * tg_.max_seq_len;
}

const float* CudaExecutor::logprobs_row(int32_t slot) const {
  return logprobs_.data() + int64_t(slot) * tg_.max_seq_len;
}

const float* CudaExecutor::logits_row(int32_t slot) const {
  return logits_.data() + int64_t(slot) * tg_.vocab_size;
}

}  // namespace megalith
