// The GPU drivers' (not the tests') way out of a failed CUDA call: the call and its error on
// stderr, and status 1 from the calling function.
#pragma once

#include <cuda_runtime.h>
#include <fmt/format.h>

#define CHECK_CUDA(call)                                                               \
  do {                                                                                 \
    const cudaError_t e_ = (call);                                                     \
    if (e_ != cudaSuccess) {                                                           \
      fmt::print(stderr, "{}: {}\n", #call, cudaGetErrorString(e_));                   \
      return 1;                                                                        \
    }                                                                                  \
  } while (0)
