// What the hand-off probes' drivers share: their one flag, `--rounds N` (1 to 100,000, default
// 2,000), the rounds of each launch; the timing of a launch; and the verdict on the launches'
// error count.
//
//   int rounds;
//   if (!parse_rounds(argc, argv, "megalith_gpu_event_latency", &rounds)) return 2;
//   float ms;
//   if (best_of_launches(reset, launch, &ms) != 0) return 1;
//   ...
//   return errors_verdict(errors);
#pragma once

#include <cuda_runtime.h>
#include <fmt/format.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "check_cuda.h"

// False, with the usage printed, on anything but --rounds N.
inline bool parse_rounds(int argc, char** argv, const char* program, int* rounds) {
  *rounds = 2000;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--rounds") != 0 || i + 1 == argc) {
      fmt::print(stderr, "usage: {} [--rounds N]\n", program);
      return false;
    }
    char* end = nullptr;
    const long n = std::strtol(argv[++i], &end, 10);
    if (*end != '\0' || n < 1 || n > 100000) {
      fmt::print(stderr, "--rounds must be 1..100000\n");
      return false;
    }
    *rounds = int(n);
  }
  return true;
}

// The best of three timed launches after a warm-up, in ms: `reset()` before each (the
// launch's zeroed buffers), `launch()` the probe's kernel, both returning a cudaError_t. 0, or 1
// with the failed call printed.
template <class Reset, class Launch>
int best_of_launches(Reset reset, Launch launch, float* best) {
  cudaEvent_t start, stop;
  CHECK_CUDA(cudaEventCreate(&start));
  CHECK_CUDA(cudaEventCreate(&stop));
  *best = 0;
  for (int i = 0; i < 4; ++i) {
    CHECK_CUDA(reset());
    CHECK_CUDA(cudaEventRecord(start));
    CHECK_CUDA(launch());
    CHECK_CUDA(cudaEventRecord(stop));
    CHECK_CUDA(cudaEventSynchronize(stop));
    float ms = 0;
    CHECK_CUDA(cudaEventElapsedTime(&ms, start, stop));
    if (i > 0 && (*best == 0 || ms < *best)) *best = ms;
  }
  CHECK_CUDA(cudaEventDestroy(start));
  CHECK_CUDA(cudaEventDestroy(stop));
  return 0;
}

// 0 when no launch counted a wrong value or a wait given up in `errors` (device memory), else 1
// with the count printed.
inline int errors_verdict(const uint32_t* errors) {
  uint32_t wrong = 0;
  CHECK_CUDA(cudaMemcpy(&wrong, errors, 4, cudaMemcpyDeviceToHost));
  if (wrong != 0) {
    fmt::print(stderr, "{} loaded values were wrong or waits gave up\n", wrong);
    return 1;
  }
  return 0;
}
