// megalith make-checkpoint: a random-weight checkpoint in the Hugging Face format.
#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "megalith/model/random_checkpoint.h"

namespace megalith::cli {

namespace {
struct MakeCheckpointArgs {
  std::string arch, preset, out, dtype = "bf16", config_style = "hub";
  uint64_t seed = 0;
  uint64_t max_shard_mb = 5120;
  bool config_only = false;
};

Status run(const MakeCheckpointArgs& a) {
  Architecture arch;
  if (a.arch == "llama") {
    arch = Architecture::kLlama;
  } else if (a.arch == "qwen2") {
    arch = Architecture::kQwen2;
  } else if (a.arch == "qwen3") {
    arch = Architecture::kQwen3;
  } else {
    return invalid_argument("unknown --arch '{}' (use llama, qwen2 or qwen3)", a.arch);
  }
  MEGALITH_ASSIGN_OR_RETURN(ModelConfig cfg, preset_config(arch, a.preset));
  const auto dtype = dtype_from_short_name(a.dtype);
  if (!dtype) return invalid_argument("unknown --dtype '{}' (use bf16, f16 or f32)", a.dtype);
  cfg.dtype = *dtype;
  RandomCheckpointOptions options;
  options.seed = a.seed;
  if (a.config_style == "hub") {
    options.style = ConfigStyle::kHub;
  } else if (a.config_style == "transformers5") {
    options.style = ConfigStyle::kTransformers5;
  } else {
    return invalid_argument("unknown --config-style '{}' (use hub or transformers5)",
                            a.config_style);
  }
  if (a.max_shard_mb == 0) return invalid_argument("--max-shard-mb must be positive");
  options.max_shard_bytes = a.max_shard_mb << 20;
  if (a.config_only) {
    std::error_code ec;
    std::filesystem::create_directories(a.out, ec);
    std::ofstream out(std::filesystem::path(a.out) / "config.json");
    out << model_config_to_json(cfg, options.style).dump(2) << "\n";
    if (ec || !out) return io_error("{}: cannot write config.json", a.out);
    fmt::print("wrote {}/config.json ({} {}, no weights)\n", a.out, a.arch, a.preset);
    return {};
  }
  MEGALITH_RETURN_IF_ERROR(write_random_checkpoint(cfg, options, a.out));
  fmt::print("wrote {} ({} {}, {:.1f}M parameters, seed {})\n", a.out, a.arch, a.preset,
             double(cfg.num_parameters()) / 1e6, a.seed);
  return {};
}
}  // namespace

Command add_make_checkpoint(CLI::App& app) {
  auto args = std::make_shared<MakeCheckpointArgs>();
  CLI::App* cmd = app.add_subcommand(
      "make-checkpoint", "Write a random-weight checkpoint in the Hugging Face format");
  cmd->add_option("--arch", args->arch, "llama, qwen2 or qwen3")->required();
  cmd->add_option("--preset", args->preset,
                  "shape: tiny, or a real one (qwen3-0.6b, qwen3-1.7b, qwen3-8b, llama-3.2-1b, "
                  "llama-3.1-8b, qwen2.5-0.5b)")
      ->required();
  cmd->add_option("--seed", args->seed, "random seed; the same seed gives the same bytes")
      ->capture_default_str();
  cmd->add_option("--out", args->out, "output directory")->required();
  cmd->add_option("--dtype", args->dtype, "weight dtype: bf16, f16 or f32")->capture_default_str();
  cmd->add_option("--config-style", args->config_style,
                  "config.json style: hub (rope_theta, torch_dtype) or transformers5 "
                  "(rope_parameters, dtype)")
      ->capture_default_str();
  cmd->add_option("--max-shard-mb", args->max_shard_mb, "largest safetensors shard, in MiB")
      ->capture_default_str();
  cmd->add_flag("--config-only", args->config_only,
                "write only config.json (enough for inspect and for --random-weights)");
  return {cmd, [args] { return run(*args); }};
}

}  // namespace megalith::cli
