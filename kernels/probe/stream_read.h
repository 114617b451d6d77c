// The host's entry point into the streaming-read bandwidth probe (stream_read.cuh), for code
// that g++ compiles: benchmarks measure their floor with it on the same GPU in the same run.
//
//   megalith::kernels::launch_stream_read(buf, bytes, sink, blocks, stream);
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace megalith::kernels {

// Launches `blocks` blocks (a few per SM) over `bytes` bytes (a multiple of 16) of `data`;
// `sink` must hold `blocks` words.
cudaError_t launch_stream_read(const void* data, size_t bytes, uint32_t* sink, int blocks,
                               cudaStream_t stream);

}  // namespace megalith::kernels
