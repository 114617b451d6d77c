// Summaries of a task graph for people: counts, bytes per task, the critical path, and a
// Graphviz rendering at fused-op granularity.
//
//   TaskGraphStats s = task_graph_stats(tg);
//   fmt::print("{} tasks, critical path {:.1f} us\n", s.tasks, s.critical_path_us);
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "megalith/compiler/task_graph.h"

namespace megalith {

struct TaskKindStats {
  std::string kind;
  int64_t tasks = 0;
  uint64_t min_bytes = 0, max_bytes = 0, total_bytes = 0;
};

struct TaskGraphStats {
  int64_t ops = 0, tasks = 0, events = 0, waits = 0;
  int64_t dependency_edges = 0;  // producer -> consumer task pairs the events stand for
  uint64_t weight_bytes = 0, activation_arena_bytes = 0, state_bytes = 0;
  uint64_t step_weight_bytes = 0;  // weight bytes one decode step reads: the bandwidth floor's
  std::vector<TaskKindStats> kinds;
  // The longest chain of estimated task costs through one step, and the fused ops on it.
  double critical_path_us = 0;
  std::vector<std::string> critical_path_ops;
  int64_t critical_path_tasks = 0;
  double busiest_worker_us = 0;  // static placement: the most loaded queue's estimated time
};

TaskGraphStats task_graph_stats(const TaskGraph& tg);
// The weight bytes one step reads from memory: every weight once (a norm weight many tasks
// read, or a tied embedding table the lm_head reads, counts once), and one embedding row.
uint64_t step_weight_bytes(const TaskGraph& tg);
// The KV-cache bytes one position adds (every layer's keys and values, in every slot): a step
// at position p reads (p + 1) times this on top of the weights, which matters at long contexts.
uint64_t kv_cache_bytes_per_position(const TaskGraph& tg);
nlohmann::json task_graph_stats_to_json(const TaskGraphStats& s);
std::string task_graph_stats_to_string(const TaskGraphStats& s);

// A Graphviz digraph of the fused ops and the dependencies between them.
std::string task_graph_to_dot(const TaskGraph& tg);

}  // namespace megalith
