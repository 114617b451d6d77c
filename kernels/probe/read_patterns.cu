#include "probe/read_patterns.h"

#include "common/sync.cuh"

namespace megalith::kernels {

namespace {

constexpr int RANGE_THREADS = 512;
constexpr int RANGE_UNROLL = 8;  // independent 16-byte loads per thread per iteration

// Each block its own contiguous range, its threads strided over it (the stream_read probe's
// loads, which stride over the whole grid instead).
__global__ void range_read_kernel(const uint4* __restrict__ data, size_t count,
                                  uint32_t* __restrict__ sink) {
  const size_t per = count / gridDim.x, base = per * blockIdx.x, end = base + per;
  const size_t stride = blockDim.x;
  uint32_t acc = 0;
  for (size_t i = base + threadIdx.x; i + (RANGE_UNROLL - 1) * stride < end;
       i += RANGE_UNROLL * stride) {
    uint4 v[RANGE_UNROLL];
#pragma unroll
    for (int u = 0; u < RANGE_UNROLL; ++u) v[u] = __ldcs(data + i + u * stride);
#pragma unroll
    for (int u = 0; u < RANGE_UNROLL; ++u) acc ^= v[u].x ^ v[u].w;
  }
  if (acc == 0x9e3779b9u) *sink = acc;  // keeps the loads; practically never taken
}

__global__ void ring_read_kernel(const uint8_t* __restrict__ data, int chunks, int stage_bytes,
                                 int stages, bool interleaved, uint32_t* __restrict__ sink) {
#if __CUDA_ARCH__ >= 900
  extern __shared__ __align__(128) uint8_t ring[];
  __shared__ uint64_t full[8];
  if (threadIdx.x != 0) return;
  for (int s = 0; s < stages; ++s) mbarrier_init(&full[s], 1);
  fence_barrier_init();
  const uint64_t policy = l2_evict_first_policy();
  const auto issue = [&](int k) {
    const int s = k % stages;
    const size_t chunk = interleaved ? size_t(k) * gridDim.x + blockIdx.x
                                     : size_t(blockIdx.x) * chunks + k;
    mbarrier_arrive_expect_tx(&full[s], uint32_t(stage_bytes));
    bulk_copy_g2s(ring + size_t(s) * stage_bytes, data + chunk * stage_bytes,
                  uint32_t(stage_bytes), &full[s], policy);
  };
  for (int k = 0; k < stages && k < chunks; ++k) issue(k);
  for (int k = 0; k < chunks; ++k) {
    while (!mbarrier_try_wait(&full[k % stages], uint32_t(k / stages) & 1)) {
    }
    if (k + stages < chunks) issue(k + stages);
  }
  if (ring[0] == 0x5a && ring[1] == 0xa5 && blockIdx.x == 0x7fffffff) *sink = 1;
#endif
}

}  // namespace

cudaError_t launch_range_read(const void* data, size_t bytes, int blocks, uint32_t* sink,
                              cudaStream_t stream) {
  if (bytes % 16 != 0 || blocks <= 0) return cudaErrorInvalidValue;
  range_read_kernel<<<blocks, RANGE_THREADS, 0, stream>>>(static_cast<const uint4*>(data),
                                                           bytes / 16, sink);
  return cudaGetLastError();
}

cudaError_t launch_ring_read(const void* data, size_t bytes, int ctas, int stage_bytes, int stages,
                             bool interleaved, uint32_t* sink, cudaStream_t stream) {
  if (ctas <= 0 || stage_bytes <= 0 || stage_bytes % 16 != 0 || stages < 1 || stages > 8) {
    return cudaErrorInvalidValue;
  }
  const size_t per_cta = ring_read_chunks(bytes, ctas, stage_bytes);
  if (per_cta == 0 || per_cta > 0x7fffffff) return cudaErrorInvalidValue;
  const int smem = stages * stage_bytes;
  cudaError_t e = cudaFuncSetAttribute(ring_read_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       smem);
  if (e != cudaSuccess) return e;
  ring_read_kernel<<<ctas, 32, smem, stream>>>(static_cast<const uint8_t*>(data), int(per_cta),
                                               stage_bytes, stages, interleaved, sink);
  return cudaGetLastError();
}

}  // namespace megalith::kernels
