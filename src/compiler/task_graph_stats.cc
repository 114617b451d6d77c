#include "megalith/compiler/task_graph_stats.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

namespace megalith {

namespace {

// Producers of each event.
std::vector<std::vector<uint32_t>> event_producers(const TaskGraph& tg) {
  std::vector<std::vector<uint32_t>> producers(tg.events.size());
  for (uint32_t t = 0; t < tg.tasks.size(); ++t) {
    for (const uint32_t e : {tg.tasks[t].signal, tg.tasks[t].second_signal}) {
      if (e != abi::kNoEvent) producers[e].push_back(t);
    }
  }
  return producers;
}

}  // namespace

uint64_t step_weight_bytes(const TaskGraph& tg) {
  // Bytes the step's tasks read of each weight buffer, at most the buffer once: norm weights
  // that many tasks read come from HBM once and from L2 after that.
  std::vector<uint64_t> read(tg.buffers.size(), 0);
  for (const abi::TaskDesc& t : tg.tasks) {
    for (uint16_t i = 0; i < t.num_refs; ++i) {
      const abi::TensorRef& r = t.refs[i];
      if (r.buffer >= tg.buffers.size() || tg.buffers[r.buffer].kind != BufferKind::kWeight) {
        continue;
      }
      const uint64_t elem = r.type == abi::RefType::kF32 ? 4 : 2;
      const uint64_t rows = t.kind == abi::TaskKind::kEmbedding ? 1 : r.rows;
      read[r.buffer] += rows * uint64_t(r.cols) * elem;
    }
  }
  uint64_t total = 0;
  for (size_t b = 0; b < tg.buffers.size(); ++b) total += std::min(read[b], tg.buffers[b].bytes);
  return total;
}

uint64_t kv_cache_bytes_per_position(const TaskGraph& tg) {
  // The state buffers are the KV caches, max_seq_len positions each.
  uint64_t total = 0;
  for (const BufferDesc& b : tg.buffers) {
    if (b.kind == BufferKind::kState) total += b.bytes;
  }
  return tg.max_seq_len > 0 ? total / uint64_t(tg.max_seq_len) : 0;
}

TaskGraphStats task_graph_stats(const TaskGraph& tg) {
  TaskGraphStats s;
  s.ops = int64_t(tg.ops.size());
  s.tasks = int64_t(tg.tasks.size());
  s.events = int64_t(tg.events.size());
  s.waits = int64_t(tg.waits.size());
  for (const BufferDesc& b : tg.buffers) {
    if (b.kind == BufferKind::kWeight) s.weight_bytes += b.bytes;
    if (b.kind == BufferKind::kActivation) s.activation_arena_bytes += b.bytes;
    if (b.kind == BufferKind::kState) s.state_bytes += b.bytes;
  }
  s.step_weight_bytes = step_weight_bytes(tg);
  std::map<std::string, TaskKindStats> kinds;
  for (const abi::TaskDesc& t : tg.tasks) {
    TaskKindStats& k = kinds[std::string(task_kind_name(t.kind))];
    const uint64_t bytes = task_bytes(tg, t);
    k.min_bytes = k.tasks == 0 ? bytes : std::min(k.min_bytes, bytes);
    k.max_bytes = std::max(k.max_bytes, bytes);
    k.total_bytes += bytes;
    ++k.tasks;
  }
  for (auto& [name, k] : kinds) {
    k.kind = name;
    s.kinds.push_back(k);
  }

  const auto producers = event_producers(tg);
  std::vector<double> finish(tg.tasks.size(), 0.0);
  std::vector<int64_t> prev(tg.tasks.size(), -1);
  for (uint32_t t = 0; t < tg.tasks.size(); ++t) {
    const abi::TaskDesc& d = tg.tasks[t];
    double start = 0;
    for (uint32_t w = d.wait_begin; w < d.wait_begin + d.wait_count; ++w) {
      if (tg.waits[w].step_offset != 0) continue;
      for (uint32_t p : producers[tg.waits[w].event]) {
        ++s.dependency_edges;
        if (finish[p] > start) {
          start = finish[p];
          prev[t] = p;
        }
      }
    }
    finish[t] = start + tg.task_cost_us[t];
  }
  int64_t t = int64_t(std::max_element(finish.begin(), finish.end()) - finish.begin());
  s.critical_path_us = finish[size_t(t)];
  std::vector<std::string> path;
  for (; t >= 0; t = prev[size_t(t)]) {
    ++s.critical_path_tasks;
    const std::string& op = tg.ops[tg.tasks[size_t(t)].op].name;
    if (path.empty() || path.back() != op) path.push_back(op);
  }
  s.critical_path_ops.assign(path.rbegin(), path.rend());

  std::vector<double> load(size_t(tg.num_workers), 0.0);
  for (uint32_t i = 0; i < tg.tasks.size(); ++i) load[tg.tasks[i].worker] += tg.task_cost_us[i];
  s.busiest_worker_us = load.empty() ? 0 : *std::max_element(load.begin(), load.end());
  return s;
}

nlohmann::json task_graph_stats_to_json(const TaskGraphStats& s) {
  nlohmann::json kinds = nlohmann::json::array();
  for (const TaskKindStats& k : s.kinds) {
    kinds.push_back({{"kind", k.kind}, {"tasks", k.tasks}, {"min_bytes", k.min_bytes},
                     {"max_bytes", k.max_bytes}, {"mean_bytes", k.total_bytes / uint64_t(k.tasks)}});
  }
  return {{"ops", s.ops}, {"tasks", s.tasks}, {"events", s.events}, {"waits", s.waits},
          {"dependency_edges", s.dependency_edges}, {"weight_bytes", s.weight_bytes},
          {"step_weight_bytes", s.step_weight_bytes},
          {"activation_arena_bytes", s.activation_arena_bytes}, {"state_bytes", s.state_bytes},
          {"task_kinds", kinds}, {"critical_path_us", s.critical_path_us},
          {"critical_path_tasks", s.critical_path_tasks},
          {"critical_path_ops", s.critical_path_ops}, {"busiest_worker_us", s.busiest_worker_us}};
}

std::string task_graph_stats_to_string(const TaskGraphStats& s) {
  std::string out = fmt::format(
      "{} fused ops, {} tasks, {} events, {} waits, {} dependency edges\n"
      "weights {:.1f} MB ({:.1f} MB read a step), activation arena {:.1f} KB, state {:.1f} MB\n",
      s.ops, s.tasks, s.events, s.waits, s.dependency_edges, double(s.weight_bytes) / 1e6,
      double(s.step_weight_bytes) / 1e6,
      double(s.activation_arena_bytes) / 1e3, double(s.state_bytes) / 1e6);
  out += fmt::format("{:<24} {:>7} {:>12} {:>12} {:>12}\n", "task kind", "tasks", "min bytes",
                     "mean bytes", "max bytes");
  for (const TaskKindStats& k : s.kinds) {
    out += fmt::format("{:<24} {:>7} {:>12} {:>12} {:>12}\n", k.kind, k.tasks, k.min_bytes,
                       k.total_bytes / uint64_t(k.tasks), k.max_bytes);
  }
  out += fmt::format("critical path: {:.1f} us estimated over {} tasks; busiest worker {:.1f} us\n",
                     s.critical_path_us, s.critical_path_tasks, s.busiest_worker_us);
  const size_t shown = std::min<size_t>(s.critical_path_ops.size(), 12);
  for (size_t i = 0; i < shown; ++i) out += fmt::format("  {}\n", s.critical_path_ops[i]);
  if (shown < s.critical_path_ops.size()) {
    out += fmt::format("  ... {} more ops ... {}\n", s.critical_path_ops.size() - shown - 1,
                       s.critical_path_ops.back());
  }
  return out;
}

std::string task_graph_to_dot(const TaskGraph& tg) {
  const auto producers = event_producers(tg);
  std::set<std::pair<uint32_t, uint32_t>> edges;
  for (uint32_t t = 0; t < tg.tasks.size(); ++t) {
    const abi::TaskDesc& d = tg.tasks[t];
    for (uint32_t w = d.wait_begin; w < d.wait_begin + d.wait_count; ++w) {
      for (uint32_t p : producers[tg.waits[w].event]) {
        if (tg.waits[w].step_offset == 0) edges.emplace(tg.tasks[p].op, d.op);
      }
    }
  }
  std::string out = "digraph megalith {\n  rankdir=TB;\n  node [shape=box, fontname=monospace];\n";
  for (size_t i = 0; i < tg.ops.size(); ++i) {
    out += fmt::format("  op{} [label=\"{}\\n{} x {}\"];\n", i, tg.ops[i].name,
                       tg.ops[i].task_count, task_kind_name(tg.ops[i].kind));
  }
  for (const auto& [a, b] : edges) out += fmt::format("  op{} -> op{};\n", a, b);
  out += fmt::format("  op{} -> op{} [style=dashed, label=\"next step\"];\n",
                     tg.tasks[tg.sink_task].op, tg.tasks[tg.source_task].op);
  return out + "}\n";
}

}  // namespace megalith
