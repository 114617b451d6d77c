// CUDA runtime errors as Status values, for the CUDA executor's host code.
#pragma once

#include <cuda_runtime.h>
#include <fmt/format.h>

#include "megalith/core/status.h"

namespace megalith::cuda {

inline Status cuda_error(cudaError_t e, const char* what) {
  return {StatusCode::kInternal, fmt::format("CUDA error in {}: {} ({})", what,
                                             cudaGetErrorString(e), cudaGetErrorName(e))};
}

}  // namespace megalith::cuda

#define MEGALITH_CUDA_RETURN_IF_ERROR(call)                        \
  do {                                                             \
    const cudaError_t megalith_cuda_error_ = (call);               \
    if (megalith_cuda_error_ != cudaSuccess) {                     \
      return ::megalith::cuda::cuda_error(megalith_cuda_error_, #call); \
    }                                                              \
  } while (0)
