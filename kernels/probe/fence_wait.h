// The host's entry point into the fence probe (fence_wait.cu): what a task's release fence and
// an input load wait for while the SM has memory traffic of its own in flight. In every CTA,
// warp 1 issues a round's traffic (cold bulk copies into shared memory, as the weight ring's
// producer does; cold L2 prefetches, as its L2 request does; copies of bytes it first asked L2
// for and gave time to arrive, as a ring that asks L2 ahead and copies late would; or nothing),
// then warp 0 times a relaxed store followed by the megakernel's release fence
// (fence.acq_rel.gpu), and one load of a line that is already in L2
// (tests/gpu/fence_wait_bench.cc).
//
//   FenceWaitArgs a = {cold, cold_bytes, offset, hot, cycles, errors, FenceTraffic::kCopies,
//                      96 << 10, settle_ns};
//   megalith::kernels::launch_fence_wait(a, ctas, stream);
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "megalith/abi/task_abi.h"  // MEGALITH_HOST_DEVICE

namespace megalith::kernels {

enum class FenceTraffic : int32_t { kNone = 0, kCopies = 1, kL2Prefetches = 2, kCopiesFromL2 = 3 };

MEGALITH_HOST_DEVICE inline bool fence_wait_copies(FenceTraffic t) {
  return t == FenceTraffic::kCopies || t == FenceTraffic::kCopiesFromL2;
}

// Copies land in shared memory, so a round's copies are at most this many bytes.
constexpr uint32_t FENCE_WAIT_MAX_COPY_BYTES = 192 << 10;
constexpr int FENCE_WAIT_ROUNDS = 64;
constexpr uint8_t FENCE_WAIT_FILL = 0x5a;  // every byte of the cold buffer
// Cycle sums a CTA writes: the fences', the loads', and (copies) from the fence's start to the
// copies' landing as their issuing warp saw it.
constexpr int FENCE_WAIT_SUMS = 3;

struct FenceWaitArgs {
  const uint8_t* cold;  // FENCE_WAIT_FILL bytes, far more than L2 holds
  uint64_t cold_bytes;  // at least 256 MiB and 64 rounds' traffic
  // Where this launch's traffic starts in `cold`: each launch past the last one's end
  // (fence_wait_span()), so that no launch finds its bytes in L2.
  uint64_t offset;
  uint64_t* hot;     // (ctas + 1) * 16 words: word 0 the line every CTA loads, then a line a CTA
  int64_t* cycles;   // FENCE_WAIT_SUMS words a CTA
  uint32_t* errors;  // one word, zero before the launch: copies that landed wrong
  FenceTraffic traffic;
  uint32_t bytes;  // a round's traffic, a multiple of 16
  // Time for a round's L2 prefetches to land: after the timing (kL2Prefetches), or before the
  // copies (kCopiesFromL2).
  uint64_t settle_ns;
};

// How far apart a launch's rounds and CTAs read `cold`; their addresses wrap at cold_bytes less
// this, so the next launch's offset does too.
MEGALITH_HOST_DEVICE inline uint64_t fence_wait_stride(uint32_t bytes) {
  return (uint64_t(bytes) + 4096 + 127) / 128 * 128;
}
// The cold bytes a launch of `ctas` CTAs spans (the next launch's offset is this much further).
inline uint64_t fence_wait_span(uint32_t bytes, int ctas) {
  return uint64_t(FENCE_WAIT_ROUNDS) * uint64_t(ctas) * fence_wait_stride(bytes);
}

// `ctas` CTAs, at most one per SM (each takes more than half an SM's shared memory), run
// FENCE_WAIT_ROUNDS rounds. cudaErrorNotSupported before sm_90, or where the build has no
// sm_90 code (no bulk copies).
cudaError_t launch_fence_wait(const FenceWaitArgs& args, int ctas, cudaStream_t stream);

}  // namespace megalith::kernels
