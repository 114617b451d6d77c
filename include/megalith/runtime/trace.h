// The megakernel's task trace for people: a summary per task kind and a Chrome / Perfetto
// trace. The timings come from CudaExecutor::run_traced(); the tracing costs nothing when off
// (the kernel checks one pointer per task).
//
//   std::vector<TaskTiming> timings;
//   MEGALITH_RETURN_IF_ERROR(exec->run_traced(steps, &timings));
//   for (const TraceKindSummary& k : summarize_trace(tg, timings)) fmt::print(...);
//   std::ofstream("trace.json") << chrome_trace(tg, timings).dump();
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "megalith/compiler/task_graph.h"

namespace megalith {

// One task at one step of a traced launch, in nanoseconds of the GPU's global timer: when its
// wait began, when its events were ready, when it began and ended streaming its weights (for
// an attention task: when it had rotated its token and when its passes over the cache ended;
// 0 for the other tasks), and when it had signalled its own; and the SM its worker ran on.
struct TaskTiming {
  uint32_t task = 0, worker = 0;
  int64_t step = 0;
  uint64_t wait_ns = 0, ready_ns = 0, stream_begin_ns = 0, stream_end_ns = 0, done_ns = 0;
  uint32_t sm = 0;
  uint32_t stalled_ns = 0;  // of the stream: waiting for weight chunks to land in the ring
};

// Per task kind, over all traced steps: how many tasks ran per step, the time they spent
// waiting for their inputs and running, the bytes they moved (task_bytes) and the rate that
// makes while running; for the kinds that stream weights, the run split into loading inputs,
// streaming and the tail (attention: rotating the token, the passes over the cache, the tail),
// and of the stream the time stalled on weight chunks not yet landed (the rest is the
// consumers' own: a stream mostly stalled waits on HBM, one barely stalled on its products).
// The wait's median beside its mean: a few workers that wait most of a step for their only
// task (lm_head's on the SMs the layers leave idle) make a mean that no task waited.
struct TraceKindSummary {
  std::string kind;
  int64_t tasks_per_step = 0;
  double total_run_us = 0, mean_wait_us = 0, median_wait_us = 0, mean_run_us = 0;
  double mean_input_us = 0, mean_stream_us = 0, mean_tail_us = 0;  // 0 when not marked
  double mean_stalled_us = 0;
  uint64_t bytes = 0;     // all traced tasks together
  double run_gbps = 0;    // bytes / total run time
};
std::vector<TraceKindSummary> summarize_trace(const TaskGraph& tg,
                                              std::span<const TaskTiming> timings);

// The summaries as a table, one line per kind (times in microseconds, the rate in GB/s; the
// wait's mean, then its median).
std::string format_trace_summary(const std::vector<TraceKindSummary>& kinds);

// Time per step: from one step's last task done to the next's, median over the steps.
double traced_step_us(std::span<const TaskTiming> timings);

// The Chrome trace event format (Perfetto opens it): a track per worker, a slice per task
// named after its fused op ("layers.3.qkv") with its kind, step and wait in the arguments,
// and the wait before it as a "wait" slice. Times in microseconds from the first wait.
nlohmann::json chrome_trace(const TaskGraph& tg, std::span<const TaskTiming> timings);

}  // namespace megalith
