// The host's entry points into the read-pattern probe (read_patterns.cu): what HBM gives 132
// SMs reading one large buffer in different ways, beside what the megakernel's ring gets
// (tests/gpu/read_patterns_bench.cc, docs/performance.md).
//
//   megalith::kernels::launch_range_read(buf, bytes, blocks, sink, stream);
//   megalith::kernels::launch_ring_read(buf, bytes, sms, 32768, 3, /*interleaved=*/false, sink, stream);
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace megalith::kernels {

// 16-byte loads, several in flight per thread, of `bytes` (a multiple of 16) of `data`, each of
// `blocks` blocks of 512 threads its own contiguous range (launch_stream_read() is the same
// loads over the whole grid in turn). `sink` holds one word.
cudaError_t launch_range_read(const void* data, size_t bytes, int blocks, uint32_t* sink,
                              cudaStream_t stream);

// The chunks of stage_bytes each CTA of launch_ring_read() reads: whole chunks, as many as fit.
inline size_t ring_read_chunks(size_t bytes, int ctas, int stage_bytes) {
  return bytes / size_t(ctas) / size_t(stage_bytes);
}
// The bytes launch_ring_read() reads.
inline size_t ring_read_bytes(size_t bytes, int ctas, int stage_bytes) {
  return ring_read_chunks(bytes, ctas, stage_bytes) * size_t(ctas) * size_t(stage_bytes);
}

// A bulk-copy ring per CTA (sm_90; elsewhere the kernel reads nothing): `stages` stages of
// `stage_bytes` (a multiple of 16), each re-issued by the CTA's one thread as soon as it has
// landed, so no consumer holds it. Chunk k of CTA b is chunk b * per_cta + k of `data` (each
// CTA its own range) or, interleaved, chunk k * ctas + b (the CTAs side by side); it reads
// ring_read_bytes() of them. Dynamic shared memory: stages * stage_bytes.
cudaError_t launch_ring_read(const void* data, size_t bytes, int ctas, int stage_bytes, int stages,
                             bool interleaved, uint32_t* sink, cudaStream_t stream);

}  // namespace megalith::kernels
