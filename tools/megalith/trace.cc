// megalith trace: one traced decode launch on the GPU. Every task's wait, start and end (and,
// for the linears, when they streamed their weights) come back from the kernel; the summary
// per task kind goes to stdout and the whole trace to a Chrome / Perfetto JSON file.
#include <fmt/format.h>

#include <fstream>
#include <memory>

#include "cli.h"

#if MEGALITH_HAS_CUDA
#include "megalith/compiler/task_graph_stats.h"
#include "megalith/runtime/cuda_executor.h"
#include "megalith/runtime/gpu_info.h"
#include "megalith/runtime/trace.h"
#endif

namespace megalith::cli {

namespace {

struct TraceArgs {
  DeviceOptions device;
  std::string preset, out = "trace.json";
  int64_t prompt_len = 32, steps = 32;
};

Status run(TraceArgs a) {
  if (a.device.device != "cuda") {
    return invalid_argument("trace records the megakernel's tasks: it needs --device cuda");
  }
  MEGALITH_RETURN_IF_ERROR(check_device(a.device));
  if (a.prompt_len < 1 || a.prompt_len > 65536 || a.steps < 1 || a.steps > 4096) {
    return invalid_argument("--prompt-len must be 1..65536 and --steps 1..4096");
  }
  if (a.out.empty()) return invalid_argument("--out needs a file name");
#if !MEGALITH_HAS_CUDA
  return unimplemented("this megalith was built without nvcc");
#else
  std::string name;
  std::unique_ptr<PresetModel> preset;
  if (!a.preset.empty()) {
    MEGALITH_ASSIGN_OR_RETURN(preset, PresetModel::create(a.preset, a.device, &name));
  }
  MEGALITH_ASSIGN_OR_RETURN(Model model, load_model(a.device));
  MEGALITH_ASSIGN_OR_RETURN(GpuInfo gpu, gpu_info(0));
  MEGALITH_ASSIGN_OR_RETURN(double read_bytes_per_s, measure_read_bandwidth(0));
  MEGALITH_ASSIGN_OR_RETURN(auto exec, make_executor(a.device, model, a.prompt_len + a.steps));
  auto* cuda = dynamic_cast<CudaExecutor*>(exec.get());
  if (cuda == nullptr) return invalid_argument("trace needs the CUDA executor");
  const TaskGraph& tg = exec->task_graph();

  std::vector<int32_t> prompt(size_t(a.prompt_len));
  for (int64_t i = 0; i < a.prompt_len; ++i) {
    prompt[size_t(i)] = int32_t((i + 1) % model.config.vocab_size);
  }
  MEGALITH_RETURN_IF_ERROR(exec->start_sequence(prompt));
  MEGALITH_RETURN_IF_ERROR(exec->run(a.prompt_len));
  std::vector<TaskTiming> timings;
  MEGALITH_RETURN_IF_ERROR(cuda->run_traced(a.steps, &timings));

  std::ofstream out(a.out);
  out << chrome_trace(tg, timings).dump() << "\n";
  if (!out) return io_error("{}: write failed", a.out);
  const double step_us = traced_step_us(timings);
  const double floor_us = double(step_weight_bytes(tg)) / read_bytes_per_s * 1e6;
  fmt::print("{} on {}: {} tasks on {} workers, {} traced steps after a {}-token prompt\n",
             name.empty() ? model.dir : name, gpu.name, tg.tasks.size(), tg.num_workers, a.steps,
             a.prompt_len);
  fmt::print("  {:.1f} us/step traced (the tracing adds a few timer reads per task), floor "
             "{:.1f} us at {:.2f} TB/s\n", step_us, floor_us, read_bytes_per_s / 1e12);
  fmt::print("{}", format_trace_summary(summarize_trace(tg, timings)));
  fmt::print("trace: {} (open in ui.perfetto.dev or chrome://tracing)\n", a.out);
  return {};
#endif
}

}  // namespace

Command add_trace(CLI::App& app) {
  auto args = std::make_shared<TraceArgs>();
  args->device.device = "cuda";
  CLI::App* cmd = app.add_subcommand(
      "trace", "Trace every task of a decode launch on the GPU: a summary and a Perfetto file");
  add_device_options(*cmd, args->device);
  cmd->add_option("--preset", args->preset,
                  "a model preset (qwen3-8b, llama-3.2-1b, qwen3:tiny, ...) with random weights "
                  "made on the GPU, instead of --model");
  cmd->add_option("--prompt-len", args->prompt_len, "prompt tokens before the traced launch")
      ->capture_default_str();
  cmd->add_option("--steps", args->steps, "decode steps traced, in one launch")
      ->capture_default_str();
  cmd->add_option("--out", args->out, "the Chrome / Perfetto trace JSON written")
      ->capture_default_str();
  return {cmd, [args] { return run(*args); }};
}

}  // namespace megalith::cli
