// What HBM gives the SMs reading one 8 GB buffer in different ways (docs/performance.md, "Where
// the bytes wait now"): plain 16-byte loads over the whole grid or a range per block, and a
// bulk-copy ring per SM like the megakernel's, whose one thread re-issues each stage as soon
// as it lands, over each SM's own range or with the SMs' chunks side by side. Set beside
// megalith_gpu_weight_stream (the megakernel's own ring and consumers), the difference is what
// the ring's hand-off costs. The best of five runs per pattern, in TB/s.
//
//   megalith_gpu_read_patterns
#include <cuda_runtime.h>
#include <fmt/format.h>

#include <algorithm>
#include <functional>

#include "check_cuda.h"
#include "probe/read_patterns.h"
#include "probe/stream_read.h"

namespace {

using namespace megalith::kernels;

int run() {
  int sms = 0, major = 0;
  CHECK_CUDA(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  CHECK_CUDA(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0));
  constexpr size_t kBytes = size_t(8) << 30;
  void* data = nullptr;
  uint32_t* sinks = nullptr;  // stream_read writes a word per block: up to 4 blocks per SM
  CHECK_CUDA(cudaMalloc(&data, kBytes));
  CHECK_CUDA(cudaMalloc(&sinks, size_t(sms) * 4 * 4));
  CHECK_CUDA(cudaMemset(data, 1, kBytes));
  cudaEvent_t start, stop;
  CHECK_CUDA(cudaEventCreate(&start));
  CHECK_CUDA(cudaEventCreate(&stop));
  // The best of five timed launches after a warm-up, in TB/s; 0 (and the error on stderr)
  // when a launch failed.
  const auto rate = [&](size_t bytes, const std::function<cudaError_t()>& launch) {
    cudaError_t e = launch();
    if (e == cudaSuccess) e = cudaDeviceSynchronize();
    float best = 1e30f;
    for (int r = 0; r < 5 && e == cudaSuccess; ++r) {
      float ms = 0;
      e = cudaEventRecord(start);
      if (e == cudaSuccess) e = launch();
      if (e == cudaSuccess) e = cudaEventRecord(stop);
      if (e == cudaSuccess) e = cudaEventSynchronize(stop);
      if (e == cudaSuccess) e = cudaEventElapsedTime(&ms, start, stop);
      best = std::min(best, ms);
    }
    if (e != cudaSuccess) {
      fmt::print(stderr, "launch failed: {}\n", cudaGetErrorString(e));
      return 0.0;
    }
    return double(bytes) / (double(best) * 1e9);
  };
  fmt::print("{} SMs, {} GB read per launch\n", sms, kBytes >> 30);
  for (int per_sm : {1, 2, 4}) {
    const int blocks = sms * per_sm;
    const double grid = rate(kBytes, [&] {
      return launch_stream_read(data, kBytes, sinks, blocks, nullptr);
    });
    const double ranges = rate(kBytes, [&] {
      return launch_range_read(data, kBytes, blocks, sinks, nullptr);
    });
    fmt::print("  plain loads, {} blocks of 512 per SM: grid-stride {:.2f} TB/s, a range per "
               "block {:.2f} TB/s\n", per_sm, grid, ranges);
  }
  if (major < 9) {
    fmt::print("  (the bulk-copy rings need sm_90)\n");
    return 0;
  }
  for (int stage_bytes : {32768, 16384}) {
    for (int stages : {3, 4, 6}) {
      for (bool interleaved : {false, true}) {
        const size_t bytes = ring_read_bytes(kBytes, sms, stage_bytes);
        const double tbps = rate(bytes, [&] {
          return launch_ring_read(data, kBytes, sms, stage_bytes, stages, interleaved, sinks, nullptr);
        });
        fmt::print("  ring of {} x {} KB per SM, {:<22} {:.2f} TB/s\n", stages, stage_bytes / 1024,
                   interleaved ? "SMs' chunks side by side:" : "a range per SM:", tbps);
      }
    }
  }
  CHECK_CUDA(cudaFree(data));
  CHECK_CUDA(cudaFree(sinks));
  return 0;
}

}  // namespace

int main() { return run(); }
