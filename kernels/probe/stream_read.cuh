// The streaming-read bandwidth probe: every benchmark's floor is weight bytes divided by what
// this kernel reaches on the same GPU in the same run. Each thread keeps several independent
// 16-byte loads in flight, because one load per thread leaves HBM far from saturated.
//
//   megalith::kernels::launch_stream_read(buf, bytes, sink, blocks, stream);
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "probe/stream_read.h"

namespace megalith::kernels {

constexpr int STREAM_READ_THREADS = 512;
constexpr int STREAM_READ_UNROLL = 8;  // independent 16-byte loads per thread per iteration

// Reads `count` uint4 vectors and folds them into one word per block, written to
// `sink[blockIdx.x]` so the loads cannot be optimized away.
__global__ void stream_read_kernel(const uint4* __restrict__ data, size_t count,
                                   uint32_t* __restrict__ sink);

}  // namespace megalith::kernels
