// What a task's release fence and its input's loads wait for (docs/performance.md, thirty-ninth
// and fortieth sessions): in every CTA, one warp issues cold memory traffic, as the weight
// ring's producer does, and another then times the megakernel's release fence after a store,
// and a load of a line already in L2. Traffic: none, bulk copies into shared memory (a ring
// stage's 32 KB a copy), or cp.async.bulk.prefetch.L2 requests (the ring's L2 request, 64 KB
// a request). Printed: SM cycles per fence and per load, the mean of 64 rounds and of the CTAs,
// on one SM and on every SM (all streaming, as in a decode step). The copies' last byte is
// checked; a wrong one fails the run.
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
  const uint64_t cold_bytes = uint64_t(1) << 30;
  uint8_t* cold = nullptr;
  uint64_t *hot = nullptr, *cycles = nullptr;
  uint32_t* errors = nullptr;
  CHECK_CUDA(cudaMalloc(&cold, cold_bytes));
  CHECK_CUDA(cudaMemset(cold, 0x5a, cold_bytes));  // fence_wait.cu's kFill
  CHECK_CUDA(cudaMalloc(&hot, size_t(sms + 1) * 16 * sizeof(uint64_t)));
  CHECK_CUDA(cudaMemset(hot, 0, size_t(sms + 1) * 16 * sizeof(uint64_t)));
  CHECK_CUDA(cudaMalloc(&cycles, size_t(sms) * 2 * sizeof(uint64_t)));
  CHECK_CUDA(cudaMalloc(&errors, 4));
  CHECK_CUDA(cudaMemset(errors, 0, 4));
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
                        {FenceTraffic::kL2Prefetches, 32, "L2 prefetches"},
                        {FenceTraffic::kL2Prefetches, 128, "L2 prefetches"},
                        {FenceTraffic::kL2Prefetches, 512, "L2 prefetches"}};
  fmt::print("SM cycles, the mean of {} rounds and of the CTAs (after a warm-up launch)\n",
             FENCE_WAIT_ROUNDS);
  fmt::print("  {:>5}  {:<24} {:>14} {:>18}\n", "CTAs", "another warp has issued", "release fence",
             "load of an L2 line");
  std::vector<uint64_t> host(size_t(sms) * 2);
  for (const int ctas : {1, sms}) {
    for (const Case& c : cases) {
      const FenceWaitArgs args{cold, cold_bytes, hot, cycles, errors, c.traffic, c.kb << 10};
      for (int launch = 0; launch < 2; ++launch) {
        CHECK_CUDA(launch_fence_wait(args, ctas, nullptr));
        CHECK_CUDA(cudaDeviceSynchronize());
      }
      CHECK_CUDA(cudaMemcpy(host.data(), cycles, size_t(ctas) * 2 * sizeof(uint64_t),
                            cudaMemcpyDeviceToHost));
      double fence = 0, load = 0;
      for (int k = 0; k < ctas; ++k) {
        fence += double(host[2 * k]) / FENCE_WAIT_ROUNDS / ctas;
        load += double(host[2 * k + 1]) / FENCE_WAIT_ROUNDS / ctas;
      }
      const std::string traffic = c.kb > 0 ? fmt::format("{} KB of {}", c.kb, c.what) : c.what;
      fmt::print("  {:>5}  {:<24} {:>14.0f} {:>18.0f}\n", ctas, traffic, fence, load);
    }
  }
  uint32_t wrong = 0;
  CHECK_CUDA(cudaMemcpy(&wrong, errors, 4, cudaMemcpyDeviceToHost));
  if (wrong != 0) {
    fmt::print(stderr, "{} rounds' copies landed wrong\n", wrong);
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return run(argc, argv); }
