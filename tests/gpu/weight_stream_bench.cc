// The weight ring and the linear consumers alone: every SM streams synthetic weight tiles
// (bf16, all 0x3c3c) through the megakernel's own producer and the bf16 decode kernel's
// stream_matvec, with no events, and the rate per SM is printed beside a run whose consumers
// only take and free the chunks (what the copies alone reach) and one whose producer hands
// over stages without copying into them (what the products alone reach). docs/performance.md:
// this is how the consumers were found to be the limit. With --sms N only N SMs stream (the same tiles each): whether one SM can take
// more than its fair share of the bandwidth when the others are idle. --scale K streams K times
// the tiles per launch (1.2 GB on 132 SMs at K = 1, about 0.3 ms), so that a launch's own
// start and its last SMs' tail weigh less in the rate.
//
//   megalith_gpu_weight_stream [--stages S] [--sms N] [--scale K]
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <fmt/format.h>

#include <cstring>
#include <string>
#include <vector>

#include "check_cuda.h"
#include "probe/weight_stream.h"

namespace {

using namespace megalith;

struct Shape {
  int cols, rows_per_task, tasks_per_sm;  // about 1 GB in all on 132 SMs
};

int run(int argc, char** argv) {
  uint32_t stages = 3;
  int only = 0, scale = 1;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--stages") == 0 && i + 1 < argc) {
      stages = uint32_t(std::stoul(argv[++i]));
    } else if (std::strcmp(argv[i], "--sms") == 0 && i + 1 < argc) {
      only = std::stoi(argv[++i]);
    } else if (std::strcmp(argv[i], "--scale") == 0 && i + 1 < argc) {
      scale = std::stoi(argv[++i]);
    } else {
      fmt::print(stderr, "usage: megalith_gpu_weight_stream [--stages S] [--sms N] [--scale K]\n");
      return 2;
    }
  }
  int sms = 0;
  CHECK_CUDA(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  if (only < 0 || only > sms) {
    fmt::print(stderr, "--sms must be 1..{}\n", sms);
    return 2;
  }
  if (scale < 1 || scale > 16) {
    fmt::print(stderr, "--scale must be 1..16\n");
    return 2;
  }
  if (only > 0) sms = only;
  // The first six as measured since the twenty-second session; then Qwen3-0.6B's tiles (q/k/v,
  // one of gate/up's two weights, o_proj, down) and a long tile of its rows, whose rate is a
  // chunk's alone: a small tile's rate against it is what each task's own start and end cost.
  const Shape shapes[] = {{4096, 384, 3},  {4096, 32, 36}, {12288, 32, 12}, {1024, 64, 72},
                          {2048, 64, 36},  {8192, 32, 18}, {1024, 32, 144}, {1024, 24, 192},
                          {2048, 8, 288},  {3072, 8, 192}, {1024, 1024, 4}};
  uint64_t most = 0;
  for (const Shape& s : shapes) {
    most = std::max(most, uint64_t(sms) * s.tasks_per_sm * scale * s.rows_per_task * s.cols * 2);
  }
  void* weights = nullptr;
  CHECK_CUDA(cudaMalloc(&weights, most));
  CHECK_CUDA(cudaMemset(weights, 0x3c, most));  // bf16 0x3c3c = 0.011474609375
  uint64_t* counters = nullptr;
  kernels::MegakernelError* error = nullptr;
  uint32_t* abort_flag = nullptr;
  kernels::QueueEntry* entries = nullptr;
  uint32_t* queue_begin = nullptr;
  CHECK_CUDA(cudaMalloc(&counters, 8));
  CHECK_CUDA(cudaMalloc(&error, sizeof(kernels::MegakernelError)));
  CHECK_CUDA(cudaMalloc(&abort_flag, 4));
  CHECK_CUDA(cudaMemset(error, 0, sizeof(kernels::MegakernelError)));
  CHECK_CUDA(cudaMemset(abort_flag, 0, 4));
  cudaEvent_t start, stop;
  CHECK_CUDA(cudaEventCreate(&start));
  CHECK_CUDA(cudaEventCreate(&stop));
  fmt::print("{} SMs streaming, {} ring stages of {} KB, {:.1f} MB per SM a launch\n", sms,
             stages, kernels::STAGE_BYTES / 1024, double(most) / sms / 1e6);
  fmt::print("  {:>6} {:>6} {:>16} {:>16} {:>18} {:>10}\n", "cols", "rows", "copies GB/s/SM",
             "matvec GB/s/SM", "products GB/s/SM", "bad rows");
  int status = 0;
  for (const Shape& s : shapes) {
    const int tasks_per_sm = s.tasks_per_sm * scale;
    const int tasks = sms * tasks_per_sm;
    const uint64_t tile_bytes = uint64_t(s.rows_per_task) * s.cols * 2;
    std::vector<kernels::QueueEntry> host(static_cast<size_t>(tasks));
    for (int i = 0; i < tasks; ++i) {
      kernels::QueueEntry& e = host[size_t(i)];  // value-initialized by the vector
      e.task.kind = abi::TaskKind::kLmHead;
      abi::TensorRef& w = e.task.refs[2];
      w.type = abi::RefType::kBF16;
      w.offset = reinterpret_cast<uint64_t>(weights) + uint64_t(i) * tile_bytes;
      w.rows = s.rows_per_task;
      w.cols = s.cols;
      w.row_stride = s.cols;
    }
    std::vector<uint32_t> begin(size_t(sms) + 1);
    for (int w = 0; w <= sms; ++w) begin[size_t(w)] = uint32_t(w * tasks_per_sm);
    CHECK_CUDA(cudaFree(entries));
    CHECK_CUDA(cudaFree(queue_begin));
    CHECK_CUDA(cudaMalloc(&entries, host.size() * sizeof(kernels::QueueEntry)));
    CHECK_CUDA(cudaMalloc(&queue_begin, begin.size() * 4));
    CHECK_CUDA(cudaMemcpy(entries, host.data(), host.size() * sizeof(kernels::QueueEntry),
                          cudaMemcpyHostToDevice));
    CHECK_CUDA(cudaMemcpy(queue_begin, begin.data(), begin.size() * 4, cudaMemcpyHostToDevice));
    kernels::MegakernelArgs args{};
    args.entries = entries;
    args.queue_begin = queue_begin;
    args.counters = counters;
    args.error = error;
    args.abort_flag = abort_flag;
    args.first_step = 0;
    args.end_step = 1;
    args.scratch_floats = kernels::linear_x_floats(s.cols) + uint32_t(s.rows_per_task) +
                          kernels::matvec_partial_floats(s.rows_per_task);
    args.num_stages = stages;
    const float expected = float(s.cols) * 0.011474609375f;
    using kernels::WeightStreamMode;
    const WeightStreamMode modes[] = {WeightStreamMode::kCopiesOnly, WeightStreamMode::kMatvec,
                                      WeightStreamMode::kProductsOnly};
    double gbps[3] = {0, 0, 0};
    uint64_t bad = 0;
    for (int m = 0; m < 3; ++m) {
      CHECK_CUDA(kernels::launch_weight_stream(args, modes[m], expected, sms, nullptr));  // warm-up
      CHECK_CUDA(cudaMemset(counters, 0, 8));
      CHECK_CUDA(cudaEventRecord(start));
      constexpr int kRuns = 5;
      for (int r = 0; r < kRuns; ++r) {
        CHECK_CUDA(kernels::launch_weight_stream(args, modes[m], expected, sms, nullptr));
      }
      CHECK_CUDA(cudaEventRecord(stop));
      CHECK_CUDA(cudaEventSynchronize(stop));
      float ms = 0;
      CHECK_CUDA(cudaEventElapsedTime(&ms, start, stop));
      gbps[m] = double(tile_bytes) * tasks * kRuns / (double(ms) * 1e6);
      if (modes[m] == WeightStreamMode::kMatvec) {
        CHECK_CUDA(cudaMemcpy(&bad, counters, 8, cudaMemcpyDeviceToHost));
      }
    }
    if (bad != 0) status = 1;
    fmt::print("  {:>6} {:>6} {:>16.1f} {:>16.1f} {:>18.1f} {:>10}\n", s.cols, s.rows_per_task,
               gbps[0] / sms, gbps[1] / sms, gbps[2] / sms, bad);
  }
  return status;
}

}  // namespace

int main(int argc, char** argv) { return run(argc, argv); }
