// megalith inspect: compile a model and report its task graph.
#include <fmt/format.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "megalith/compiler/compiler.h"
#include "megalith/compiler/task_graph_stats.h"
#include "megalith/model/model_graph.h"

namespace megalith::cli {

namespace {
struct InspectArgs {
  std::string model;
  int32_t workers = 132;
  int64_t max_seq_len = 4096;
  bool json = false;
  std::string dot, save;
};

Status run(const InspectArgs& a) {
  MEGALITH_ASSIGN_OR_RETURN(std::string dir, resolve_model_dir(a.model));
  MEGALITH_ASSIGN_OR_RETURN(ModelConfig cfg, load_model_config(std::filesystem::path(dir) / "config.json"));
  if (a.max_seq_len < 1 || a.max_seq_len > (1 << 24)) {
    return invalid_argument("--max-seq-len must be between 1 and 16777216, got {}", a.max_seq_len);
  }
  const auto start = std::chrono::steady_clock::now();
  MEGALITH_ASSIGN_OR_RETURN(Graph g, build_decode_graph(cfg, 1, a.max_seq_len));
  MEGALITH_ASSIGN_OR_RETURN(TaskGraph tg, compile(g, cfg, {.num_workers = a.workers}));
  const double compile_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  const TaskGraphStats stats = task_graph_stats(tg);
  if (!a.dot.empty()) {
    std::ofstream out(a.dot);
    out << task_graph_to_dot(tg);
    if (!out) return io_error("{}: cannot write the dot file", a.dot);
  }
  if (!a.save.empty()) MEGALITH_RETURN_IF_ERROR(save_task_graph(tg, a.save));
  if (a.json) {
    nlohmann::json out = task_graph_to_json(tg);
    out["stats"] = task_graph_stats_to_json(stats);
    out["graph_ops"] = g.ops.size();
    out["compile_ms"] = compile_ms;
    out["model"] = dir;
    fmt::print("{}\n", out.dump());
  } else {
    fmt::print("{} ({} layers): {} graph ops compiled for {} workers in {:.1f} ms\n", dir,
               cfg.num_layers, g.ops.size(), a.workers, compile_ms);
    fmt::print("{}", task_graph_stats_to_string(stats));
  }
  return {};
}
}  // namespace

Command add_inspect(CLI::App& app) {
  auto args = std::make_shared<InspectArgs>();
  CLI::App* cmd = app.add_subcommand(
      "inspect", "Compile a model into its task graph and report ops, tasks, events, "
                 "dependencies, bytes per task and the critical path");
  cmd->add_option("--model", args->model,
                  "model directory; only config.json is read (default: the built-in model)");
  cmd->add_option("--workers", args->workers, "worker SMs to compile for")->capture_default_str();
  cmd->add_option("--max-seq-len", args->max_seq_len, "positions the KV cache holds")
      ->capture_default_str();
  cmd->add_flag("--json", args->json, "print the whole task graph (tasks, events) as JSON");
  cmd->add_option("--dot", args->dot, "write a Graphviz graph of the fused ops to this file");
  cmd->add_option("--save", args->save, "write the binary task graph to this file");
  return {cmd, [args] { return run(*args); }};
}

}  // namespace megalith::cli
