// The host's entry point into the fence probe (fence_wait.cu): what a task's release fence and
// an input load wait for while the SM has memory traffic of its own in flight. In every CTA,
// warp 1 issues a round's traffic (cold bulk copies into shared memory, as the weight ring's
// producer does, or cold L2 prefetches, as its L2 request does, or nothing), then warp 0 times
// a relaxed store followed by the megakernel's release fence (fence.acq_rel.gpu), and one load
// of a line that is already in L2 (tests/gpu/fence_wait_bench.cc).
//
//   FenceWaitArgs a = {cold, cold_bytes, hot, cycles, errors, FenceTraffic::kCopies, 96 << 10};
//   megalith::kernels::launch_fence_wait(a, ctas, stream);
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace megalith::kernels {

enum class FenceTraffic : int32_t { kNone = 0, kCopies = 1, kL2Prefetches = 2 };

// Copies land in shared memory, so a round's copies are at most this many bytes.
constexpr uint32_t FENCE_WAIT_MAX_COPY_BYTES = 192 << 10;
constexpr int FENCE_WAIT_ROUNDS = 64;

struct FenceWaitArgs {
  const uint8_t* cold;  // bytes no round reads twice while they could still be in L2
  uint64_t cold_bytes;  // at least 256 MiB and 64 rounds' traffic
  uint64_t* hot;        // (ctas + 1) * 16 words: word 0 the line every CTA loads, then a
                        // line a CTA for its store
  uint64_t* cycles;     // 2 words a CTA: the fences' and the loads' SM cycles, summed
  uint32_t* errors;     // one word, zero before the launch: copies that landed wrong
  FenceTraffic traffic;
  uint32_t bytes;       // a round's traffic, a multiple of 16
};

// `ctas` CTAs (at most one per SM, so that each has its SM to itself) run FENCE_WAIT_ROUNDS
// rounds. cudaErrorNotSupported before sm_90 (no bulk copies).
cudaError_t launch_fence_wait(const FenceWaitArgs& args, int ctas, cudaStream_t stream);

}  // namespace megalith::kernels
