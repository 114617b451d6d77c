// The trace summary and the Chrome trace, on a synthetic trace of a real task graph.
#include "megalith/runtime/trace.h"

#include <gtest/gtest.h>

#include <map>

#include "megalith/compiler/compiler.h"
#include "megalith/model/model_graph.h"
#include "megalith/model/random_checkpoint.h"

namespace megalith {
namespace {

TaskGraph tiny_graph() {
  const ModelConfig cfg = *preset_config(Architecture::kQwen3, "tiny");
  StatusOr<Graph> g = build_decode_graph(cfg, 1, 40);
  EXPECT_TRUE(g.ok());
  StatusOr<TaskGraph> tg = compile(*g, cfg, {.num_workers = 5});
  EXPECT_TRUE(tg.ok());
  return std::move(tg).value();
}

// The kinds whose device code marks the middle of its run (TaskTiming).
bool marks_phases(abi::TaskKind k) {
  return k == abi::TaskKind::kRmsNormLinear || k == abi::TaskKind::kLinearResidual ||
         k == abi::TaskKind::kRmsNormGateUpSilu || k == abi::TaskKind::kLmHead ||
         k == abi::TaskKind::kAttentionPartial;
}

// Every task of steps 10..12: waits 1 us, runs 4 us (marked kinds: 1 us input, 2 in the
// middle, 1 tail); step s ends at 1000 us * s; worker w runs on SM 100 + w.
std::vector<TaskTiming> synthetic(const TaskGraph& tg) {
  std::vector<TaskTiming> out;
  for (int64_t step = 10; step < 13; ++step) {
    for (uint32_t w = 0; w < uint32_t(tg.num_workers); ++w) {
      for (uint32_t q = tg.queue_begin[w]; q < tg.queue_begin[w + 1]; ++q) {
        const uint32_t task = tg.queue_tasks[q];
        const uint64_t done = uint64_t(step) * 1'000'000 - q * 10'000;
        TaskTiming t{task, w, step, done - 5000, done - 4000, 0, 0, done, 100 + w};
        if (marks_phases(tg.tasks[task].kind)) {
          t.stream_begin_ns = done - 3000;
          t.stream_end_ns = done - 1000;
          t.stalled_ns = 500;
        }
        out.push_back(t);
      }
    }
  }
  return out;
}

TEST(Trace, SummaryPerKind) {
  const TaskGraph tg = tiny_graph();
  const std::vector<TaskTiming> timings = synthetic(tg);
  std::map<std::string, int64_t> count;
  std::map<std::string, uint64_t> bytes;
  for (const abi::TaskDesc& t : tg.tasks) {
    ++count[std::string(task_kind_name(t.kind))];
    bytes[std::string(task_kind_name(t.kind))] += 3 * task_bytes(tg, t);
  }
  const std::vector<TraceKindSummary> kinds = summarize_trace(tg, timings);
  ASSERT_EQ(kinds.size(), count.size());
  for (const TraceKindSummary& k : kinds) {
    SCOPED_TRACE(k.kind);
    EXPECT_EQ(k.tasks_per_step, count[k.kind]);
    EXPECT_DOUBLE_EQ(k.mean_wait_us, 1.0);
    EXPECT_DOUBLE_EQ(k.median_wait_us, 1.0);
    EXPECT_DOUBLE_EQ(k.mean_run_us, 4.0);
    EXPECT_DOUBLE_EQ(k.total_run_us, 4.0 * 3 * double(count[k.kind]));
    EXPECT_EQ(k.bytes, bytes[k.kind]);
    EXPECT_DOUBLE_EQ(k.run_gbps, double(k.bytes) / (k.total_run_us * 1e3));
    const bool streams = k.mean_stream_us > 0;
    EXPECT_EQ(streams, k.kind == "rms_norm_linear" || k.kind == "linear_residual" ||
                           k.kind == "rms_norm_gate_up_silu" || k.kind == "lm_head" ||
                           k.kind == "attention_partial");
    if (streams) {
      EXPECT_DOUBLE_EQ(k.mean_input_us, 1.0);
      EXPECT_DOUBLE_EQ(k.mean_stream_us, 2.0);
      EXPECT_DOUBLE_EQ(k.mean_tail_us, 1.0);
      EXPECT_DOUBLE_EQ(k.mean_stalled_us, 0.5);
    }
  }
  EXPECT_NE(format_trace_summary(kinds).find("rms_norm_linear"), std::string::npos);
  EXPECT_DOUBLE_EQ(traced_step_us(timings), 1000.0);
}

// A few tasks that wait a whole step (workers with nothing else to run) move the mean wait of
// their kind, not its median.
TEST(Trace, MedianWaitIgnoresAFewLongWaits) {
  const TaskGraph tg = tiny_graph();
  std::vector<TaskTiming> timings = synthetic(tg);
  const abi::TaskKind kind = abi::TaskKind::kRmsNormLinear;
  int64_t of_kind = 0, stretched = 0;
  for (TaskTiming& t : timings) {
    if (tg.tasks[t.task].kind != kind) continue;
    ++of_kind;
    if (stretched < of_kind / 4) {
      t.wait_ns -= 800000;  // 800 us more
      ++stretched;
    }
  }
  ASSERT_GT(stretched, 0);
  ASSERT_LT(2 * stretched, of_kind);
  for (const TraceKindSummary& k : summarize_trace(tg, timings)) {
    if (k.kind != task_kind_name(kind)) continue;
    EXPECT_DOUBLE_EQ(k.median_wait_us, 1.0);
    EXPECT_NEAR(k.mean_wait_us, 1.0 + 800.0 * double(stretched) / double(of_kind), 1e-9);
    return;
  }
  FAIL() << "no summary for " << task_kind_name(kind);
}

TEST(Trace, ChromeTraceHasATrackPerWorkerAndASlicePerTaskAndWait) {
  const TaskGraph tg = tiny_graph();
  const std::vector<TaskTiming> timings = synthetic(tg);
  const nlohmann::json trace = chrome_trace(tg, timings);
  ASSERT_TRUE(trace.contains("traceEvents"));
  int64_t tracks = 0, tasks = 0, waits = 0;
  for (const nlohmann::json& e : trace["traceEvents"]) {
    if (e["ph"] == "M") {
      ++tracks;
      continue;
    }
    EXPECT_EQ(e["ph"], "X");
    EXPECT_GE(e["ts"].get<double>(), 0.0);
    if (e["name"] == "wait") {
      ++waits;
      EXPECT_DOUBLE_EQ(e["dur"].get<double>(), 1.0);
      continue;
    }
    ++tasks;
    EXPECT_DOUBLE_EQ(e["dur"].get<double>(), 4.0);
    const uint32_t task = e["args"]["task"];
    EXPECT_EQ(e["args"]["sm"].get<uint32_t>(), 100 + e["tid"].get<uint32_t>());
    // The slice is named after the fused op that holds the task.
    bool found = false;
    for (const FusedOpInfo& op : tg.ops) {
      if (task >= op.task_begin && task < op.task_begin + op.task_count) {
        EXPECT_EQ(e["name"], op.name);
        found = true;
      }
    }
    EXPECT_TRUE(found) << task;
  }
  EXPECT_EQ(tracks, tg.num_workers);
  EXPECT_EQ(tasks, int64_t(timings.size()));
  EXPECT_EQ(waits, int64_t(timings.size()));
}

}  // namespace
}  // namespace megalith
