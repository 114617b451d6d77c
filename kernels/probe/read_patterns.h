// The host's entry points into the read-pattern probe (read_patterns.cu): what HBM gives 132
// SMs reading one large buffer in different ways, beside what the megakernel's ring gets
// (tests/gpu/read_patterns_bench.cc, docs/performance.md).
//
//   megalith::kernels::launch_plain_read(buf, bytes, /*per_block=*/true, blocks, sink, stream);
//   megalith::kernels::launch_ring_read(buf, bytes, sms, 32768, 3, /*interleaved=*/false, sink, stream);
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace megalith::kernels {

// 16-byte loads, several in flight per thread, of `bytes` (a multiple of 16) of `data`: over
// the whole grid in turn (per_block false), or each block its own contiguous range. `sink`
// holds one word.
cudaError_t launch_plain_read(const void* data, size_t bytes, bool per_block, int blocks,
                              uint32_t* sink, cudaStream_t stream);

// A bulk-copy ring per CTA (sm_90; elsewhere the kernel reads nothing): `stages` stages of
// `stage_bytes` (a multiple of 16), each re-issued by the CTA's one thread as soon as it has
// landed, so no consumer holds it. Chunk k of CTA b is chunk b * per_cta + k of `data` (each
// CTA its own range) or, interleaved, chunk k * ctas + b (the CTAs side by side). Dynamic
// shared memory: stages * stage_bytes.
// The bytes launch_ring_read() reads: whole chunks, as many per CTA as fit.
inline size_t ring_read_bytes(size_t bytes, int ctas, int stage_bytes) {
  return bytes / size_t(ctas) / size_t(stage_bytes) * size_t(ctas) * size_t(stage_bytes);
}

cudaError_t launch_ring_read(const void* data, size_t bytes, int ctas, int stage_bytes, int stages,
                             bool interleaved, uint32_t* sink, cudaStream_t stream);

}  // namespace megalith::kernels
