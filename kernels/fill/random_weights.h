// The host's entry point into the random-weight fill: a weight generated in place on the GPU,
// element for element the value the host's random checkpoints hold (abi/random_weight.h).
//
//   RandomWeightParams p = random_weight_params(seed, name, shape);
//   cudaError_t e = launch_random_weight_fill(dst, count, abi::RefType::kBF16, p, stream);
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "megalith/abi/random_weight.h"
#include "megalith/abi/task_abi.h"

namespace megalith::kernels {

// Writes elements [0, count) of the weight described by `params` to `dst` in `type`, rounded to
// nearest-even like the host's conversions. Asynchronous on `stream`.
cudaError_t launch_random_weight_fill(void* dst, uint64_t count, abi::RefType type,
                                      const abi::RandomWeightParams& params, cudaStream_t stream);

}  // namespace megalith::kernels
