// Shared pieces of the megalith subcommands: registration, argument parsing, output.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "megalith/core/status.h"
#include "megalith/engine/generation.h"
#include "megalith/model/checkpoint.h"
#include "megalith/model/reference_model.h"
#include "megalith/runtime/executor.h"
#include "megalith/tokenizer/chat_template.h"
#include "megalith/tokenizer/tokenizer.h"

namespace megalith::cli {

// Each subcommand registers itself and returns what to run when it is chosen.
struct Command {
  CLI::App* app;
  std::function<Status()> run;
};
Command add_make_checkpoint(CLI::App& app);
Command add_generate(CLI::App& app);
Command add_score(CLI::App& app);
Command add_inspect(CLI::App& app);
Command add_bench(CLI::App& app);
Command add_trace(CLI::App& app);
Command add_chat(CLI::App& app);
Command add_serve(CLI::App& app);

// Parses "1,2,3" (spaces allowed) into token ids.
StatusOr<std::vector<int32_t>> parse_ids(const std::string& text, const std::string& flag);

// The model directory to use: the one given, or the built-in default model.
StatusOr<std::string> resolve_model_dir(const std::string& given);

// Options every model-running subcommand takes.
struct DeviceOptions {
  std::string model;
  std::string device = "cpu";  // cpu: threads, cuda: the megakernel, ref: the reference model
  bool random_weights = false;    // weights from weights_seed, not files: DIR needs config.json
  uint64_t weights_seed = 0;
  // The task graph's workers; 0: the GPU's SMs on --device cuda (one fewer in dynamic mode,
  // whose schedulers take one), else 132 (an H100/H200).
  int32_t workers = 0;
  int32_t cpu_workers = 0;  // threads playing them; 0: one per core
  std::string schedule = "static";
  uint64_t shuffle_seed = 0;
  int64_t max_seq_len = 0;  // 0: what the request needs
  // Cache rows per attention split (CompileOptions::attention_keys_per_split); 0: the
  // compiler's default.
  int64_t keys_per_split = 0;
};
void add_device_options(CLI::App& cmd, DeviceOptions& opts);
// --temperature, --top-p, --top-k and --seed.
void add_sampling_options(CLI::App& cmd, SamplingParams& sampling);
Status check_device(const DeviceOptions& opts);

// The model the options name: its directory, its config, and its weights (a checkpoint; none
// for random weights on --device cuda, which the GPU generates in place).
struct Model {
  std::string dir;
  ModelConfig config;
  std::unique_ptr<Checkpoint> checkpoint;
};
StatusOr<Model> load_model(const DeviceOptions& opts);
// The model directory's tokenizer.json, checked to fit the model's vocabulary.
StatusOr<Tokenizer> load_model_tokenizer(const Model& model);

// A model preset ("qwen3-8b", "llama:tiny") as a config-only model directory with random
// weights: --preset of bench and trace. The directory is removed with the object.
class PresetModel {
 public:
  // Points `opts` at the preset's directory, random weights; `name` gets the preset's name.
  static StatusOr<std::unique_ptr<PresetModel>> create(const std::string& preset,
                                                       DeviceOptions& opts, std::string* name);
  ~PresetModel();
  PresetModel(const PresetModel&) = delete;
  PresetModel& operator=(const PresetModel&) = delete;

 private:
  explicit PresetModel(std::string dir) : dir_(std::move(dir)) {}
  std::string dir_;
};

// Compiles the model's decode graph for `positions` KV-cache rows (or --max-seq-len) and
// `batch` slots, and binds it to the executor of --device cpu or cuda.
StatusOr<std::unique_ptr<Executor>> make_executor(const DeviceOptions& opts, const Model& model,
                                                  int64_t positions, int32_t batch = 1);

// What generate, chat and serve run prompts through: the reference model (--device ref), or the
// task graph compiled for `positions` KV-cache rows and `batch` slots on the executor of
// --device cpu or cuda. `model` must outlive the runner.
class ModelRunner {
 public:
  static StatusOr<std::unique_ptr<ModelRunner>> create(const DeviceOptions& opts,
                                                       const Model& model, int64_t positions,
                                                       int32_t batch = 1);
  StatusOr<GenerationResult> generate(std::span<const int32_t> prompt,
                                      const GenerationOptions& options,
                                      const SamplingParams& sampling);
  // The positions a prompt and its continuation may take (prompt + new tokens - 1).
  int64_t max_positions() const { return exec_ ? exec_->max_positions() : positions_; }
  Executor* executor() { return exec_.get(); }  // null on --device ref

 private:
  std::unique_ptr<Executor> exec_;
  std::optional<ReferenceModel> reference_;
  int64_t positions_ = 0;
};

// The ids generation ends at: the model's end-of-sequence ids, and the end of an assistant turn
// when the prompt is in `chat`'s template.
std::vector<int64_t> stop_token_ids(const ModelConfig& config, const ChatTemplate* chat);

}  // namespace megalith::cli
