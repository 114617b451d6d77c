#include "megalith/runtime/trace.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <numeric>

namespace megalith {

std::vector<TraceKindSummary> summarize_trace(const TaskGraph& tg,
                                              std::span<const TaskTiming> timings) {
  struct Sums {
    double run = 0, input = 0, stream = 0, tail = 0, stalled = 0;
    int64_t streamed = 0;
    uint64_t bytes = 0;
    // Each task's: one per task of the kind, summed for the mean, the middle one the median.
    std::vector<double> waits;
  };
  std::map<std::string_view, Sums> by_kind;
  int64_t first_step = INT64_MAX, last_step = INT64_MIN;
  for (const TaskTiming& t : timings) {
    if (t.task >= tg.tasks.size()) continue;
    const abi::TaskDesc& desc = tg.tasks[t.task];
    Sums& s = by_kind[task_kind_name(desc.kind)];
    s.waits.push_back(double(t.ready_ns - t.wait_ns) * 1e-3);
    s.run += double(t.done_ns - t.ready_ns) * 1e-3;
    if (t.stream_begin_ns != 0) {
      s.input += double(t.stream_begin_ns - t.ready_ns) * 1e-3;
      s.stream += double(t.stream_end_ns - t.stream_begin_ns) * 1e-3;
      s.tail += double(t.done_ns - t.stream_end_ns) * 1e-3;
      s.stalled += double(t.stalled_ns) * 1e-3;
      ++s.streamed;
    }
    s.bytes += task_bytes(tg, desc);
    first_step = std::min(first_step, t.step);
    last_step = std::max(last_step, t.step);
  }
  const int64_t steps = by_kind.empty() ? 1 : last_step - first_step + 1;
  std::vector<TraceKindSummary> out;
  for (auto& [kind, s] : by_kind) {
    const int64_t tasks = int64_t(s.waits.size());
    const double n = double(tasks), streamed = double(std::max<int64_t>(1, s.streamed));
    TraceKindSummary k;
    k.kind = std::string(kind);
    k.tasks_per_step = tasks / steps;
    k.total_run_us = s.run;
    k.mean_wait_us = std::accumulate(s.waits.begin(), s.waits.end(), 0.0) / n;
    const auto middle = s.waits.begin() + std::ptrdiff_t(s.waits.size() / 2);
    std::nth_element(s.waits.begin(), middle, s.waits.end());
    k.median_wait_us = *middle;
    k.mean_run_us = s.run / n;
    k.mean_input_us = s.input / streamed;
    k.mean_stream_us = s.stream / streamed;
    k.mean_tail_us = s.tail / streamed;
    k.mean_stalled_us = s.stalled / streamed;
    k.bytes = s.bytes;
    k.run_gbps = s.run > 0 ? double(s.bytes) / (s.run * 1e3) : 0;
    out.push_back(std::move(k));
  }
  return out;
}

std::string format_trace_summary(const std::vector<TraceKindSummary>& kinds) {
  std::string out =
      fmt::format("  {:<24} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}\n", "kind",
                  "tasks", "wait us", "median", "run us", "input", "stream", "stalled", "tail",
                  "GB/s");
  for (const TraceKindSummary& k : kinds) {
    out += fmt::format(
        "  {:<24} {:>6} {:>9.2f} {:>9.2f} {:>9.2f} {:>9.2f} {:>9.2f} {:>9.2f} {:>9.2f} {:>9.1f}\n",
        k.kind, k.tasks_per_step, k.mean_wait_us, k.median_wait_us, k.mean_run_us,
        k.mean_input_us, k.mean_stream_us, k.mean_stalled_us, k.mean_tail_us, k.run_gbps);
  }
  return out;
}

double traced_step_us(std::span<const TaskTiming> timings) {
  std::map<int64_t, uint64_t> last_done;
  for (const TaskTiming& t : timings) {
    uint64_t& d = last_done[t.step];
    d = std::max(d, t.done_ns);
  }
  std::vector<double> steps;
  uint64_t previous = 0;
  for (const auto& [step, done] : last_done) {
    if (previous != 0) steps.push_back(double(done - previous) * 1e-3);
    previous = done;
  }
  if (steps.empty()) return 0;
  std::sort(steps.begin(), steps.end());
  return steps[steps.size() / 2];
}

nlohmann::json chrome_trace(const TaskGraph& tg, std::span<const TaskTiming> timings) {
  // The fused op of every task, by the ops' task ranges.
  std::vector<const FusedOpInfo*> op_of(tg.tasks.size(), nullptr);
  for (const FusedOpInfo& op : tg.ops) {
    for (uint32_t i = op.task_begin; i < op.task_begin + op.task_count && i < op_of.size(); ++i) {
      op_of[i] = &op;
    }
  }
  uint64_t origin = UINT64_MAX;
  for (const TaskTiming& t : timings) origin = std::min(origin, t.wait_ns);
  const auto us = [&](uint64_t ns) { return double(ns - origin) * 1e-3; };
  nlohmann::json events = nlohmann::json::array();
  std::vector<bool> named(size_t(std::max(tg.num_workers, 0)), false);
  for (const TaskTiming& t : timings) {
    if (t.task >= tg.tasks.size()) continue;
    if (t.worker < named.size() && !named[t.worker]) {
      named[t.worker] = true;
      events.push_back({{"ph", "M"}, {"name", "thread_name"}, {"pid", 0}, {"tid", t.worker},
                        {"args", {{"name", "worker " + std::to_string(t.worker)}}}});
    }
    const abi::TaskDesc& desc = tg.tasks[t.task];
    const std::string kind(task_kind_name(desc.kind));
    if (t.ready_ns > t.wait_ns) {
      events.push_back({{"ph", "X"}, {"name", "wait"}, {"cat", "wait"}, {"pid", 0},
                        {"tid", t.worker}, {"ts", us(t.wait_ns)},
                        {"dur", double(t.ready_ns - t.wait_ns) * 1e-3}});
    }
    nlohmann::json args = {{"task", t.task}, {"kind", kind}, {"step", t.step},
                           {"wait_us", double(t.ready_ns - t.wait_ns) * 1e-3},
                           {"bytes", task_bytes(tg, desc)}, {"sm", t.sm}};
    if (t.stream_begin_ns != 0) {
      args["stream_us"] = double(t.stream_end_ns - t.stream_begin_ns) * 1e-3;
      args["stalled_us"] = double(t.stalled_ns) * 1e-3;
    }
    events.push_back({{"ph", "X"}, {"name", op_of[t.task] ? op_of[t.task]->name : kind},
                      {"cat", kind}, {"pid", 0}, {"tid", t.worker}, {"ts", us(t.ready_ns)},
                      {"dur", double(t.done_ns - t.ready_ns) * 1e-3}, {"args", args}});
  }
  return {{"traceEvents", events}, {"displayTimeUnit", "ns"}};
}

}  // namespace megalith
