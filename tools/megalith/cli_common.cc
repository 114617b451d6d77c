#include <filesystem>

#include "cli.h"
#include "megalith/compiler/compiler.h"
#include "megalith/model/model_graph.h"

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
                 "where to run: cpu (the compiled task graph on threads) or ref (the reference "
                 "model, no compiler)")
      ->capture_default_str();
  cmd.add_option("--workers", opts.workers,
                 "worker SMs to compile the task graph for (the numerics follow its tiles)")
      ->capture_default_str();
  cmd.add_option("--cpu-workers", opts.cpu_workers,
                 "threads playing the workers on --device cpu; 0: one per core (results do not "
                 "depend on it)")
      ->capture_default_str();
  cmd.add_option("--schedule", opts.schedule,
                 "static (compiler-ordered queues) or dynamic (scheduler threads)")
      ->capture_default_str();
  cmd.add_option("--shuffle-seed", opts.shuffle_seed,
                 "non-zero: random delays and placement, to shake out ordering bugs")
      ->capture_default_str();
  cmd.add_option("--max-seq-len", opts.max_seq_len,
                 "KV-cache positions to compile for; default: what the request needs");
}

Status check_device(const DeviceOptions& opts) {
  if (opts.device == "cuda") {
    return unimplemented("--device cuda is not available yet; use --device cpu");
  }
  if (opts.device != "cpu" && opts.device != "ref") {
    return invalid_argument("unknown --device '{}' (use cpu or ref)", opts.device);
  }
  if (opts.workers < 1 || opts.workers > 4096) {
    return invalid_argument("--workers must be between 1 and 4096, got {}", opts.workers);
  }
  if (opts.cpu_workers < 0 || opts.cpu_workers > 1024) {
    return invalid_argument("--cpu-workers must be between 0 and 1024, got {}", opts.cpu_workers);
  }
  if (opts.schedule != "static" && opts.schedule != "dynamic") {
    return invalid_argument("unknown --schedule '{}' (use static or dynamic)", opts.schedule);
  }
  if (opts.max_seq_len < 0 || opts.max_seq_len > (1 << 24)) {
    return invalid_argument("--max-seq-len must be between 1 and 16777216, got {}",
                            opts.max_seq_len);
  }
  return {};
}

StatusOr<std::unique_ptr<CpuExecutor>> make_cpu_executor(const DeviceOptions& opts,
                                                         const Checkpoint& ckpt, int64_t positions) {
  const ModelConfig& cfg = ckpt.config();
  const int64_t max_seq = opts.max_seq_len > 0 ? opts.max_seq_len : std::max<int64_t>(positions, 1);
  MEGALITH_ASSIGN_OR_RETURN(Graph g, build_decode_graph(cfg, 1, max_seq));
  MEGALITH_ASSIGN_OR_RETURN(TaskGraph tg, compile(g, cfg, {.num_workers = opts.workers}));
  CpuExecutorOptions options;
  options.mode = opts.schedule == "dynamic" ? SchedulingMode::kDynamic : SchedulingMode::kStatic;
  options.shuffle_seed = opts.shuffle_seed;
  options.threads = opts.cpu_workers;
  return CpuExecutor::create(tg, ckpt, options);
}

}  // namespace megalith::cli
