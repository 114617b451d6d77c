// Random weights generated in place: one thread per element, grid-stride, so filling the 16 GB
// of an 8B model takes a fraction of a second instead of a checkpoint file.
#include "fill/random_weights.h"

#include "common/dtype.cuh"

namespace megalith::kernels {

namespace {

template <class T>
__global__ void random_weight_fill(T* dst, uint64_t count, abi::RandomWeightParams params) {
  const uint64_t stride = uint64_t(gridDim.x) * blockDim.x;
  for (uint64_t i = uint64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride) {
    dst[i] = from_float<T>(abi::random_weight_value(params, int64_t(i)));
  }
}

}  // namespace

cudaError_t launch_random_weight_fill(void* dst, uint64_t count, abi::RefType type,
                                      const abi::RandomWeightParams& params, cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  constexpr int kThreads = 256;
  const uint64_t wanted = (count + kThreads - 1) / kThreads;
  const unsigned blocks = unsigned(wanted < 65536 ? wanted : 65536);
  switch (type) {
    case abi::RefType::kBF16:
      random_weight_fill<<<blocks, kThreads, 0, stream>>>(static_cast<__nv_bfloat16*>(dst), count,
                                                          params);
      break;
    case abi::RefType::kF16:
      random_weight_fill<<<blocks, kThreads, 0, stream>>>(static_cast<__half*>(dst), count, params);
      break;
    case abi::RefType::kF32:
      random_weight_fill<<<blocks, kThreads, 0, stream>>>(static_cast<float*>(dst), count, params);
      break;
    default:
      return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

}  // namespace megalith::kernels
