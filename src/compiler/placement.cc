#include <algorithm>

#include "passes.h"

namespace megalith::compiler {

namespace {

// Bytes a task moves. An attention split reads only its slice of the cache.
double moved_bytes(const Program& p, const Task& t) {
  double bytes = 0;
  for (const Access& a : t.refs) {
    if (a.value == kNoValue) continue;
    const Value& v = p.values[size_t(a.value)];
    double b = double(a.rows) * double(a.cols) * double(elem_size(v.type));
    if (t.kind == abi::TaskKind::kAttentionPartial && v.kind == BufferKind::kState) {
      b /= t.params.attention.num_splits;
    }
    bytes += b;
  }
  return bytes;
}

bool is_attention(abi::TaskKind kind) {
  return kind == abi::TaskKind::kAttentionPartial || kind == abi::TaskKind::kAttentionMerge;
}

}  // namespace

std::vector<uint32_t> place_tasks(Program& p, const CompileOptions& options) {
  const size_t workers = size_t(options.num_workers);
  std::vector<double> available(workers, 0.0), finish(p.tasks.size(), 0.0);
  std::vector<uint32_t> worker(p.tasks.size(), 0);
  for (size_t t = 0; t < p.tasks.size(); ++t) {
    Task& task = p.tasks[t];
    task.cost_us = moved_bytes(p, task) / (options.worker_gbps * 1e3) + options.task_overhead_us;
    double ready = 0;
    for (uint32_t d : task.deps) ready = std::max(ready, finish[d]);
    // With dedicated attention workers, each kind keeps to its own range of workers.
    size_t first = 0, end = workers;
    if (options.attention_workers > 0) {
      const size_t split = size_t(options.attention_workers);
      (is_attention(task.kind) ? end : first) = split;
    }
    size_t best = first;
    for (size_t w = first + 1; w < end; ++w) {
      if (std::max(ready, available[w]) < std::max(ready, available[best])) best = w;
    }
    finish[t] = std::max(ready, available[best]) + task.cost_us;
    available[best] = finish[t];
    worker[t] = uint32_t(best);
  }
  return worker;
}

}  // namespace megalith::compiler
