// What a task's release fence and its input's loads wait for (docs/performance.md, thirty-ninth
// to forty-second sessions): in every CTA, one warp issues cold memory traffic, as the weight
// ring's producer does, and another then times the megakernel's release fence after a store,
// and a load of a line already in L2. Traffic: none, bulk copies into shared memory (a ring
// stage's 32 KB a copy), the same copies of lines asked of L2 first (untimed, given time to
// arrive), or cp.async.bulk.prefetch.L2 requests (the ring's L2 request, 64 KB a request).
// Printed: SM cycles per fence and per load, the mean of 64 rounds and of the CTAs, on one SM
// and on every SM (all streaming, as in a decode step), and when the copies landed (from the
// fence's start, as their warp saw it: a fence about as long waits for them). Every launch
// reads bytes no launch before it read, so none finds them in L2 but those its own rounds asked
// for. Each round's copies are checked; a wrong byte fails the run.
//
//   megalith_gpu_fence_wait
#include <cuda_runtime.h>
#include <fmt/format.h>

#include <string>
#include <vector>

#include "check_cuda.h"
#include "probe/fence_wait.h"

namespace {

using namespace megalith::kernels;

int run(int argc, char** /*argv*/) {
  if (argc > 1) {
    fmt::print(stderr, "usage: megalith_gpu_fence_wait\n");
    return 2;
  }
  int sms = 0;
  CHECK_CUDA(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  const uint64_t cold_bytes = uint64_t(2) << 30;
  uint8_t* cold = nullptr;
  uint64_t* hot = nullptr;
  int64_t* cycles = nullptr;
  uint32_t* errors = nullptr;
  const size_t hot_bytes = size_t(sms + 1) * 16 * sizeof(uint64_t);
  const size_t cycle_bytes = size_t(sms) * FENCE_WAIT_SUMS * sizeof(int64_t);
  CHECK_CUDA(cudaMalloc(&cold, cold_bytes));
  CHECK_CUDA(cudaMemset(cold, FENCE_WAIT_FILL, cold_bytes));
  CHECK_CUDA(cudaMalloc(&hot, hot_bytes));
  CHECK_CUDA(cudaMemset(hot, 0, hot_bytes));
  CHECK_CUDA(cudaMalloc(&cycles, cycle_bytes));
  CHECK_CUDA(cudaMalloc(&errors, 4));
  struct Case {
    FenceTraffic traffic;
    uint32_t kb;
    const char* what;
  };
  const Case cases[] = {{FenceTraffic::kNone, 0, "nothing"},
                        {FenceTraffic::kCopies, 8, "copies"},
                        {FenceTraffic::kCopies, 16, "copies"},
                        {FenceTraffic::kCopies, 32, "copies"},
                        {FenceTraffic::kCopies, 96, "copies"},
                        {FenceTraffic::kCopies, 192, "copies"},
                        {FenceTraffic::kCopiesFromL2, 32, "copies from L2"},
                        {FenceTraffic::kCopiesFromL2, 96, "copies from L2"},
                        {FenceTraffic::kL2Prefetches, 32, "L2 prefetches"},
                        {FenceTraffic::kL2Prefetches, 128, "L2 prefetches"},
                        {FenceTraffic::kL2Prefetches, 512, "L2 prefetches"}};
  fmt::print("SM cycles, the mean of {} rounds and of the CTAs (after a warm-up launch); "
             "landed: from the fence's start to the copies' landing\n",
             FENCE_WAIT_ROUNDS);
  fmt::print("  {:>5}  {:<24} {:>14} {:>18} {:>8}\n", "CTAs", "another warp has issued",
             "release fence", "load of an L2 line", "landed");
  std::vector<int64_t> sums(size_t(sms) * FENCE_WAIT_SUMS);
  uint64_t offset = 0;  // every launch reads bytes no launch before it read
  for (const int ctas : {1, sms}) {
    for (const Case& c : cases) {
      const uint32_t bytes = c.kb << 10;
      // At 2 TB/s, the round's prefetches from every CTA, and 20 us more.
      const uint64_t settle_ns = 20000 + uint64_t(ctas) * bytes / 2000;
      CHECK_CUDA(cudaMemset(cycles, 0, cycle_bytes));
      CHECK_CUDA(cudaMemset(errors, 0, 4));
      for (int launch = 0; launch < 2; ++launch) {
        const FenceWaitArgs args{cold,   cold_bytes, offset,  hot,      cycles,
                                 errors, c.traffic,  bytes,   settle_ns};
        CHECK_CUDA(launch_fence_wait(args, ctas, nullptr));
        CHECK_CUDA(cudaDeviceSynchronize());
        offset = (offset + fence_wait_span(bytes, ctas)) % (cold_bytes - fence_wait_stride(bytes));
      }
      CHECK_CUDA(cudaMemcpy(sums.data(), cycles, size_t(ctas) * FENCE_WAIT_SUMS * sizeof(int64_t),
                            cudaMemcpyDeviceToHost));
      double mean[FENCE_WAIT_SUMS] = {};
      for (int k = 0; k < ctas; ++k) {
        for (int m = 0; m < FENCE_WAIT_SUMS; ++m) {
          mean[m] += double(sums[size_t(k) * FENCE_WAIT_SUMS + m]) / FENCE_WAIT_ROUNDS / ctas;
        }
      }
      const std::string traffic = c.kb > 0 ? fmt::format("{} KB of {}", c.kb, c.what) : c.what;
      const std::string landed = fence_wait_copies(c.traffic) ? fmt::format("{:.0f}", mean[2]) : "";
      fmt::print("  {:>5}  {:<24} {:>14.0f} {:>18.0f} {:>8}\n", ctas, traffic, mean[0], mean[1],
                 landed);
      uint32_t wrong = 0;
      CHECK_CUDA(cudaMemcpy(&wrong, errors, 4, cudaMemcpyDeviceToHost));
      if (wrong != 0) {
        fmt::print(stderr, "{} rounds' copies landed wrong ({} CTAs, {})\n", wrong, ctas, traffic);
        return 1;
      }
    }
  }
  CHECK_CUDA(cudaFree(cold));
  CHECK_CUDA(cudaFree(hot));
  CHECK_CUDA(cudaFree(cycles));
  CHECK_CUDA(cudaFree(errors));
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return run(argc, argv); }
