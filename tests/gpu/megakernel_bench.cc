// Decode speed of the megakernel on random checkpoints of published model shapes, against the
// floor: the weight bytes one step reads, at the bandwidth the stream_read probe reaches on the
// same GPU in the same run. A traced launch then splits each task kind's time into waiting
// for its inputs and running.
//
//   megalith_gpu_bench [--steps N] [--max-stages S] [--general-paths] [--per-thread-release]
//                      [--dynamic]
//                      [--kernel-per-op] [--claim-rows [--tiles]] [--keys-per-split K]
//                      [--attention-workers N]
//                      [--tile-row-multiple M] [--max-task-mb MB] [--sms N]
//                      [arch:preset ...]     # default qwen3:tiny qwen3:qwen3-0.6b
//
// --sms N runs the megakernel on N of the GPU's SMs (the floor stays the whole GPU's): each
// SM's share of HBM then grows as on a GPU with faster memory, so an H100 on 88-90 SMs streams
// an SM's weights at about the rate an H200's 132 do (34 GB/s), the regime where the consumers'
// own rate matters (docs/performance.md, forty-eighth session).
#include <cuda_runtime.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "megalith/compiler/compiler.h"
#include "megalith/compiler/task_graph_stats.h"
#include "megalith/model/model_graph.h"
#include "megalith/model/random_checkpoint.h"
#include "megalith/runtime/cuda_executor.h"
#include "probe/stream_read.h"

namespace megalith {
namespace {

using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Bytes per second of a streaming read of 4 GiB, the median of 10 timed passes.
StatusOr<double> read_bandwidth(int sms) {
  const size_t bytes = size_t(4) << 30;
  void* buf = nullptr;
  uint32_t* sink = nullptr;
  cudaEvent_t begin, end;
  const int blocks = 4 * sms;
  if (cudaMalloc(&buf, bytes) != cudaSuccess || cudaMalloc(&sink, blocks * 4) != cudaSuccess ||
      cudaMemset(buf, 0x3c, bytes) != cudaSuccess || cudaEventCreate(&begin) != cudaSuccess ||
      cudaEventCreate(&end) != cudaSuccess) {
    return Status(StatusCode::kInternal, "cannot set up the bandwidth probe");
  }
  std::vector<double> seconds;
  for (int i = 0; i < 13; ++i) {
    cudaEventRecord(begin);
    if (kernels::launch_stream_read(buf, bytes, sink, blocks, nullptr) != cudaSuccess) {
      return Status(StatusCode::kInternal, "the bandwidth probe failed to launch");
    }
    cudaEventRecord(end);
    cudaEventSynchronize(end);
    float ms = 0;
    cudaEventElapsedTime(&ms, begin, end);
    if (i >= 3) seconds.push_back(ms * 1e-3);
  }
  cudaFree(buf);
  cudaFree(sink);
  return double(bytes) / median(seconds);
}

Status bench(const std::string& spec, int64_t steps, int sms, double bandwidth,
             const CudaExecutorOptions& options, const CompileOptions& compile_options) {
  const size_t colon = spec.find(':');
  if (colon == std::string::npos) return invalid_argument("'{}' is not arch:preset", spec);
  const std::string arch_name = spec.substr(0, colon), preset = spec.substr(colon + 1);
  Architecture arch;
  if (arch_name == "llama") {
    arch = Architecture::kLlama;
  } else if (arch_name == "qwen2") {
    arch = Architecture::kQwen2;
  } else if (arch_name == "qwen3") {
    arch = Architecture::kQwen3;
  } else {
    return invalid_argument("unknown architecture '{}'", arch_name);
  }
  MEGALITH_ASSIGN_OR_RETURN(ModelConfig cfg, preset_config(arch, preset));
  const auto t0 = Clock::now();
  const int64_t max_seq = 16 + 6 * steps;
  MEGALITH_ASSIGN_OR_RETURN(Graph g, build_decode_graph(cfg, 1, max_seq));
  // Dynamic mode's schedulers take an SM of their own.
  const int32_t workers = options.mode == SchedulingMode::kDynamic ? sms - 1 : sms;
  CompileOptions copts = compile_options;
  copts.num_workers = workers;
  MEGALITH_ASSIGN_OR_RETURN(TaskGraph tg, compile(g, cfg, copts));
  MEGALITH_ASSIGN_OR_RETURN(auto exec, CudaExecutor::create_random(tg, cfg, 1, options));
  const double setup_s = std::chrono::duration<double>(Clock::now() - t0).count();

  const std::vector<int32_t> prompt = {1, 2, 3, 4};
  MEGALITH_RETURN_IF_ERROR(exec->start_sequence(prompt));
  MEGALITH_RETURN_IF_ERROR(exec->run(8));  // warm-up
  std::vector<double> us_per_step;
  for (int rep = 0; rep < 3; ++rep) {
    const auto a = Clock::now();
    MEGALITH_RETURN_IF_ERROR(exec->run(steps));
    us_per_step.push_back(std::chrono::duration<double, std::micro>(Clock::now() - a).count() / double(steps));
  }
  std::vector<TaskTiming> timings;
  if (!options.kernel_per_op) MEGALITH_RETURN_IF_ERROR(exec->run_traced(steps, &timings));

  const uint64_t bytes = step_weight_bytes(tg);
  const double floor_us = double(bytes) / bandwidth * 1e6, measured = median(us_per_step);
  fmt::print("\n{} ({} {}, {} tasks on {} workers, {} mode, {} kernel, {} ring stages, {:.1f} MB "
             "of weights a step; set-up {:.1f} s)\n", spec, dtype_short_name(cfg.dtype),
             architecture_short_name(arch), tg.tasks.size(), tg.num_workers,
             options.kernel_per_op ? "kernel-per-op" : scheduling_mode_name(options.mode),
             exec->bf16_decode_kernel() ? "bf16-decode" : "general", exec->ring_stages(),
             double(bytes) / 1e6,
             setup_s);
  fmt::print("  {:.1f} us/step (runs {:.1f} {:.1f} {:.1f}), floor {:.1f} us: {:.1f}% of the floor\n",
             measured, us_per_step[0], us_per_step[1], us_per_step[2], floor_us,
             100 * floor_us / measured);

  if (options.kernel_per_op) {
    fmt::print("  kernel-per-op mode: one launch per fused op, from a CUDA graph (no trace)\n");
    return {};
  }
  fmt::print("  traced: {:.1f} us/step (median, last task done to last task done)\n",
             traced_step_us(timings));
  fmt::print("{}", format_trace_summary(summarize_trace(tg, timings)));
  return {};
}

int run_bench(int argc, char** argv) {
  int64_t steps = 64;
  std::optional<int> use_sms;  // unset: every SM
  CudaExecutorOptions options;
  CompileOptions compile_options;
  std::vector<std::string> specs;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--steps" && i + 1 < argc) {
      steps = std::max<int64_t>(1, std::stoll(argv[++i]));
    } else if (arg == "--max-stages" && i + 1 < argc) {
      options.max_stages = uint32_t(std::stoul(argv[++i]));
    } else if (arg == "--general-paths") {
      options.general_paths = true;  // bf16 decode on the general kernel
    } else if (arg == "--per-thread-release") {
      options.per_thread_release = true;
    } else if (arg == "--dynamic") {
      options.mode = SchedulingMode::kDynamic;
    } else if (arg == "--kernel-per-op") {
      options.kernel_per_op = true;
    } else if (arg == "--claim-rows") {
      compile_options.claim_rows = true;  // compiled with claimed rows (compiler/claimed_rows.h)
    } else if (arg == "--keys-per-split" && i + 1 < argc) {
      compile_options.attention_keys_per_split = std::max<int64_t>(1, std::stoll(argv[++i]));
    } else if (arg == "--tile-row-multiple" && i + 1 < argc) {
      compile_options.tile_row_multiple = int32_t(std::stoi(argv[++i]));
    } else if (arg == "--max-task-mb" && i + 1 < argc) {
      // The most weight bytes a linear's task streams (CompileOptions::max_task_weight_bytes):
      // only lm_head's tiles reach the default's 4 MB on these models.
      compile_options.max_task_weight_bytes = std::max<int64_t>(1, std::stoll(argv[++i])) << 20;
    } else if (arg == "--attention-workers" && i + 1 < argc) {
      compile_options.attention_workers = int32_t(std::stoi(argv[++i]));
    } else if (arg == "--sms" && i + 1 < argc) {
      use_sms = std::stoi(argv[++i]);
    } else if (arg == "--tiles") {
      options.claim_rows = false;  // ... but every linear task run on its own tile
    } else {
      specs.push_back(arg);
    }
  }
  if (specs.empty()) specs = {"qwen3:tiny", "qwen3:qwen3-0.6b"};
  int devices = 0, sms = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0 ||
      cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0) != cudaSuccess) {
    fmt::print(stderr, "megalith_gpu_bench: no CUDA device\n");
    return 1;
  }
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
  StatusOr<double> bandwidth = read_bandwidth(sms);
  if (!bandwidth.ok()) {
    fmt::print(stderr, "megalith_gpu_bench: {}\n", bandwidth.status().message());
    return 1;
  }
  fmt::print("{}, {} SMs: streaming read {:.0f} GB/s\n", prop.name, sms, *bandwidth / 1e9);
  if (use_sms && (*use_sms < 1 || *use_sms > sms)) {
    fmt::print(stderr, "megalith_gpu_bench: --sms must be 1..{}\n", sms);
    return 2;
  }
  const int run_sms = use_sms.value_or(sms);
  if (run_sms < sms) {
    fmt::print("the megakernel on {} of the {} SMs: {:.1f} GB/s an SM of that read (all {}: {:.1f})\n",
               run_sms, sms, *bandwidth / 1e9 / run_sms, sms, *bandwidth / 1e9 / sms);
  }
  int failures = 0;
  for (const std::string& spec : specs) {
    const Status s = bench(spec, steps, run_sms, *bandwidth, options, compile_options);
    if (!s.ok()) {
      fmt::print(stderr, "{}: {}\n", spec, s.message());
      ++failures;
    }
  }
  return failures == 0 ? 0 : 1;
}

}  // namespace
}  // namespace megalith

int main(int argc, char** argv) { return megalith::run_bench(argc, argv); }
