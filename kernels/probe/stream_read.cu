#include "probe/stream_read.cuh"

namespace megalith::kernels {

__global__ void stream_read_kernel(const uint4* __restrict__ data, size_t count,
                                   uint32_t* __restrict__ sink) {
  const size_t stride = size_t(gridDim.x) * blockDim.x;
  size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  uint32_t acc = 0;
  for (; i + (STREAM_READ_UNROLL - 1) * stride < count; i += STREAM_READ_UNROLL * stride) {
    uint4 v[STREAM_READ_UNROLL];
#pragma unroll
    for (int u = 0; u < STREAM_READ_UNROLL; ++u) v[u] = __ldcs(data + i + u * stride);
#pragma unroll
    for (int u = 0; u < STREAM_READ_UNROLL; ++u) acc ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
  }
  for (; i < count; i += stride) {
    const uint4 v = __ldcs(data + i);
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  // One word per block: fold the block's values through shared memory.
  __shared__ uint32_t partial[STREAM_READ_THREADS];
  partial[threadIdx.x] = acc;
  __syncthreads();
  for (int width = blockDim.x / 2; width > 0; width /= 2) {
    if (threadIdx.x < width) partial[threadIdx.x] ^= partial[threadIdx.x + width];
    __syncthreads();
  }
  if (threadIdx.x == 0) sink[blockIdx.x] = partial[0];
}

cudaError_t launch_stream_read(const void* data, size_t bytes, uint32_t* sink, int blocks,
                               cudaStream_t stream) {
  if (bytes % sizeof(uint4) != 0 || blocks <= 0) return cudaErrorInvalidValue;
  stream_read_kernel<<<blocks, STREAM_READ_THREADS, 0, stream>>>(
      static_cast<const uint4*>(data), bytes / sizeof(uint4), sink);
  return cudaGetLastError();
}

}  // namespace megalith::kernels
