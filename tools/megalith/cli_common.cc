#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "megalith/compiler/compiler.h"
#include "megalith/core/progress_bar.h"
#include "megalith/model/model_graph.h"
#include "megalith/model/random_checkpoint.h"
#include "megalith/runtime/cpu_executor.h"
#if MEGALITH_HAS_CUDA
#include "megalith/runtime/cuda_executor.h"
#include "megalith/runtime/gpu_info.h"
#endif

namespace megalith::cli {

StatusOr<std::vector<int32_t>> parse_ids(const std::string& text, const std::string& flag) {
  std::vector<int32_t> ids;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t comma = text.find(',', pos);
    if (comma == std::string::npos) comma = text.size();
    std::string item = text.substr(pos, comma - pos);
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    int64_t value = 0;
    size_t used = 0;
    try {
      value = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (item.empty() || used != item.size() || value < 0 || value > INT32_MAX) {
      return invalid_argument("{}: '{}' is not a token id (expected comma-separated "
                              "non-negative integers such as 1,2,3)", flag, item);
    }
    ids.push_back(int32_t(value));
    pos = comma + 1;
  }
  return ids;
}

StatusOr<std::string> resolve_model_dir(const std::string& given) {
  if (!given.empty()) return given;
  std::error_code ec;
  if (!std::filesystem::is_directory(MEGALITH_DEFAULT_MODEL_DIR, ec)) {
    return not_found("no --model given and the built-in default model is missing at {}; run "
                     "scripts/demo (or pass --model DIR)", MEGALITH_DEFAULT_MODEL_DIR);
  }
  return std::string(MEGALITH_DEFAULT_MODEL_DIR);
}

void add_device_options(CLI::App& cmd, DeviceOptions& opts) {
  cmd.add_option("--model", opts.model,
                 "Hugging Face model directory (config.json + safetensors); default: the "
                 "built-in model");
  cmd.add_option("--device", opts.device,
                 "where to run: cpu (the compiled task graph on threads), cuda (the megakernel "
                 "on GPU 0) or ref (the reference model, no compiler)")
      ->capture_default_str();
  cmd.add_flag("--random-weights", opts.random_weights,
               "megalith's random weights for --weights-seed instead of the model's files (the "
               "model directory needs only config.json); on cuda the GPU generates them");
  cmd.add_option("--weights-seed", opts.weights_seed,
                 "seed of --random-weights: the same model as make-checkpoint --seed writes")
      ->capture_default_str();
  cmd.add_option("--workers", opts.workers,
                 "worker SMs to compile the task graph for (the numerics follow its tiles); 0: "
                 "the GPU's SMs on cuda (one fewer with --schedule dynamic), else 132")
      ->capture_default_str();
  cmd.add_option("--cpu-workers", opts.cpu_workers,
                 "threads playing the workers on --device cpu; 0: one per core (results do not "
                 "depend on it)")
      ->capture_default_str();
  cmd.add_option("--schedule", opts.schedule,
                 "static (compiler-ordered queues), dynamic (schedulers dispatch ready tasks: "
                 "warps on an SM of their own on cuda, threads on cpu) or kernel-per-op (cuda "
                 "only, the megakernel's ablation: the same tasks, one kernel launch per fused "
                 "op, replayed from a CUDA graph)")
      ->capture_default_str();
  cmd.add_option("--shuffle-seed", opts.shuffle_seed,
                 "non-zero: random delays and placement, to shake out ordering bugs")
      ->capture_default_str();
  cmd.add_option("--max-seq-len", opts.max_seq_len,
                 "KV-cache positions to compile for; default: what the request needs");
  cmd.add_option("--keys-per-split", opts.keys_per_split,
                 "cache rows per attention split: a KV head's attention takes a task per this "
                 "many rows of --max-seq-len (at least 8 from four times this on), at most "
                 "workers / KV heads; default: the compiler's");
}

Status check_device(const DeviceOptions& opts) {
  if (opts.device != "cpu" && opts.device != "cuda" && opts.device != "ref") {
    return invalid_argument("unknown --device '{}' (use cpu, cuda or ref)", opts.device);
  }
#if !MEGALITH_HAS_CUDA
  if (opts.device == "cuda") {
    return unimplemented("this megalith was built without nvcc, so --device cuda is missing");
  }
#endif
  if (opts.workers < 0 || opts.workers > 4096) {
    return invalid_argument("--workers must be between 0 (automatic) and 4096, got {}",
                            opts.workers);
  }
  if (opts.cpu_workers < 0 || opts.cpu_workers > 1024) {
    return invalid_argument("--cpu-workers must be between 0 and 1024, got {}", opts.cpu_workers);
  }
  if (opts.schedule != "static" && opts.schedule != "dynamic" && opts.schedule != "kernel-per-op") {
    return invalid_argument("unknown --schedule '{}' (use static, dynamic or kernel-per-op)",
                            opts.schedule);
  }
  if (opts.schedule == "kernel-per-op" && opts.device != "cuda") {
    return invalid_argument("--schedule kernel-per-op launches GPU kernels: use it with --device cuda");
  }
  if (opts.max_seq_len < 0 || opts.max_seq_len > (1 << 24)) {
    return invalid_argument("--max-seq-len must be between 1 and 16777216, got {}",
                            opts.max_seq_len);
  }
  if (opts.keys_per_split < 0 || opts.keys_per_split > (1 << 24)) {
    return invalid_argument("--keys-per-split must be between 1 and 16777216, got {}",
                            opts.keys_per_split);
  }
  return {};
}

StatusOr<Model> load_model(const DeviceOptions& opts) {
  Model model;
  MEGALITH_ASSIGN_OR_RETURN(model.dir, resolve_model_dir(opts.model));
  if (!opts.random_weights) {
    MEGALITH_ASSIGN_OR_RETURN(model.checkpoint, load_checkpoint(model.dir));
    model.config = model.checkpoint->config();
    // The GPU upload reads the weights behind its own bar; the CPU reads them here, once.
    if (opts.device != "cuda") {
      ProgressBar bar("loading weights");
      model.checkpoint->read_weights([&bar](uint64_t done, uint64_t total) { bar.update(done, total); });
    }
    return model;
  }
  MEGALITH_ASSIGN_OR_RETURN(model.config,
                            load_model_config(std::filesystem::path(model.dir) / "config.json"));
  if (opts.device != "cuda") {
    MEGALITH_ASSIGN_OR_RETURN(model.checkpoint, random_checkpoint(model.config, opts.weights_seed));
  }
  return model;
}

// "qwen3-8b" or "llama:tiny": the preset's architecture is found when the name is unique.
static StatusOr<ModelConfig> find_preset(const std::string& spec) {
  const size_t colon = spec.find(':');
  const std::string name = colon == std::string::npos ? spec : spec.substr(colon + 1);
  const std::string arch = colon == std::string::npos ? "" : spec.substr(0, colon);
  std::vector<Architecture> matches;
  for (Architecture a : {Architecture::kLlama, Architecture::kQwen2, Architecture::kQwen3}) {
    if (!arch.empty() && architecture_short_name(a) != arch) continue;
    const auto names = preset_names(a);
    if (std::find(names.begin(), names.end(), name) != names.end()) matches.push_back(a);
  }
  if (matches.size() != 1) {
    return invalid_argument("--preset '{}' names {} model presets; use ARCH:NAME (see "
                            "make-checkpoint --help)", spec, matches.empty() ? "no" : "several");
  }
  return preset_config(matches[0], name);
}

StatusOr<std::unique_ptr<PresetModel>> PresetModel::create(const std::string& preset,
                                                           DeviceOptions& opts, std::string* name) {
  if (!opts.model.empty()) return invalid_argument("give --model or --preset, not both");
  MEGALITH_ASSIGN_OR_RETURN(ModelConfig cfg, find_preset(preset));
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / fmt::format("megalith_{}_{}", preset, getpid());
  std::filesystem::create_directories(dir);
  std::unique_ptr<PresetModel> model(new PresetModel(dir.string()));
  std::ofstream(dir / "config.json") << model_config_to_json(cfg, ConfigStyle::kHub).dump(2);
  opts.model = dir.string();
  opts.random_weights = true;
  if (name->empty()) *name = preset.substr(preset.find(':') + 1);
  return model;
}

PresetModel::~PresetModel() {
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

void add_sampling_options(CLI::App& cmd, SamplingParams& sampling) {
  cmd.add_option("--temperature", sampling.temperature, "0 is greedy")->capture_default_str();
  cmd.add_option("--top-p", sampling.top_p, "nucleus sampling mass")->capture_default_str();
  cmd.add_option("--top-k", sampling.top_k, "keep the k likeliest tokens; 0 keeps all")
      ->capture_default_str();
  cmd.add_option("--seed", sampling.seed, "sampling seed")->capture_default_str();
}

StatusOr<Tokenizer> load_model_tokenizer(const Model& model) {
  const std::filesystem::path path = std::filesystem::path(model.dir) / "tokenizer.json";
  if (!std::filesystem::exists(path)) {
    return not_found("{} has no tokenizer.json: give the prompt as --prompt-ids, or use a model "
                     "with a tokenizer", model.dir);
  }
  MEGALITH_ASSIGN_OR_RETURN(Tokenizer tok, Tokenizer::load(path));
  if (tok.vocab_size() > model.config.vocab_size) {
    return invalid_argument("{}: the tokenizer has {} ids, the model's vocabulary {}",
                            path.string(), tok.vocab_size(), model.config.vocab_size);
  }
  return tok;
}

StatusOr<std::unique_ptr<Executor>> make_executor(const DeviceOptions& opts, const Model& model,
                                                  int64_t positions, int32_t batch) {
  const ModelConfig& cfg = model.config;
  const int64_t max_seq = opts.max_seq_len > 0 ? opts.max_seq_len : std::max<int64_t>(positions, 1);
  MEGALITH_ASSIGN_OR_RETURN(Graph g, build_decode_graph(cfg, 1, max_seq));
  const SchedulingMode mode =
      opts.schedule == "dynamic" ? SchedulingMode::kDynamic : SchedulingMode::kStatic;
  int32_t workers = opts.workers > 0 ? opts.workers : 132;
#if MEGALITH_HAS_CUDA
  if (opts.workers == 0 && opts.device == "cuda") {
    MEGALITH_ASSIGN_OR_RETURN(GpuInfo gpu, gpu_info(0));
    workers = gpu.sms - (mode == SchedulingMode::kDynamic ? 1 : 0);
  }
#endif
  ProgressBar passes("compiling", ProgressUnit::kSteps);
  CompileOptions compile_options{.num_workers = workers, .batch = batch};
  if (opts.keys_per_split > 0) compile_options.attention_keys_per_split = opts.keys_per_split;
  compile_options.on_pass = [&passes](std::string_view pass, int done, int total) {
    passes.update(uint64_t(done), uint64_t(total), std::string(pass));
  };
  MEGALITH_ASSIGN_OR_RETURN(TaskGraph tg, compile(g, cfg, compile_options));
  passes.finish();
  if (opts.device == "cuda") {
#if MEGALITH_HAS_CUDA
    CudaExecutorOptions options;
    options.mode = mode;
    options.kernel_per_op = opts.schedule == "kernel-per-op";
    ProgressBar bar("uploading weights");
    options.on_upload = [&bar](uint64_t done, uint64_t total) { bar.update(done, total); };
    std::unique_ptr<CudaExecutor> exec;
    if (model.checkpoint) {
      MEGALITH_ASSIGN_OR_RETURN(exec, CudaExecutor::create(tg, *model.checkpoint, options));
      bar.finish();
    } else {
      MEGALITH_ASSIGN_OR_RETURN(exec,
                                CudaExecutor::create_random(tg, cfg, opts.weights_seed, options));
    }
    return std::unique_ptr<Executor>(std::move(exec));
#endif
  }
  CpuExecutorOptions options;
  options.mode = mode;
  options.shuffle_seed = opts.shuffle_seed;
  options.threads = opts.cpu_workers;
  MEGALITH_ASSIGN_OR_RETURN(auto exec, CpuExecutor::create(tg, *model.checkpoint, options));
  return std::unique_ptr<Executor>(std::move(exec));
}

StatusOr<std::unique_ptr<ModelRunner>> ModelRunner::create(const DeviceOptions& opts,
                                                           const Model& model, int64_t positions,
                                                           int32_t batch) {
  std::unique_ptr<ModelRunner> runner(new ModelRunner());
  runner->positions_ = opts.max_seq_len > 0 ? opts.max_seq_len : positions;
  if (opts.device == "ref") {
    runner->reference_.emplace(*model.checkpoint);
  } else {
    MEGALITH_ASSIGN_OR_RETURN(runner->exec_, make_executor(opts, model, positions, batch));
  }
  return runner;
}

StatusOr<GenerationResult> ModelRunner::generate(std::span<const int32_t> prompt,
                                                 const GenerationOptions& options,
                                                 const SamplingParams& sampling) {
  if (exec_) return megalith::generate(*exec_, prompt, options, sampling);
  MEGALITH_RETURN_IF_ERROR(validate(sampling));
  Sampler sampler(sampling);
  return megalith::generate(*reference_, prompt, options, sampler);
}

std::vector<int64_t> stop_token_ids(const ModelConfig& config, const ChatTemplate* chat) {
  std::vector<int64_t> ids = config.eos_token_ids;
  if (chat) ids.insert(ids.end(), chat->stop_token_ids().begin(), chat->stop_token_ids().end());
  return ids;
}

}  // namespace megalith::cli
