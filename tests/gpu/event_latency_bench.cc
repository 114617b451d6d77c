// What a phase boundary of the megakernel costs at the least (docs/performance.md): CTAs, one
// per SM, run rounds of the boundary alone, with the megakernel's primitives. Each writes its
// share of a vector (its "tile's rows"), thread 0 signals one counter with a release and waits
// with acquires until every CTA has signalled, and then all 256 threads load the whole
// vector into shared memory, four 16-byte loads in flight each, as a task loads its input
// row. Printed: the microseconds a round, for 2 CTAs and for every SM, with no vector and
// with vectors of 32 and 96 floats per CTA (4096- and 12288-wide rows on 128 SMs), for the
// megakernel's signal (one counter, acquire polls) and the alternatives: relaxed polls with one
// acquire fence, the releases spread over 8 or 32 counters on lines of their own, which the
// waiting warp's lanes poll and add up, a flag a CTA (a release store of the round) that the
// waiting warp polls for every CTA, and no signal at all, each float stored with the round
// beside it in one 8-byte word (NCCL's LL protocol) and loaded until its round is the reader's.
// And the hand-off a split-K product would need: every CTA adds 1 to each element of the whole
// vector with relaxed atomics (floats, 4-float vectors, 64-bit integers) before the
// megakernel's signal, at 8 and 16 floats a CTA too (about the 1,024- and 2,048-wide rows of
// Qwen3-0.6B and Llama-3.2-1B on 128 SMs), beside the megakernel's signal at those widths.
// The loaded values are checked; a wrong one fails the run.
//
//   megalith_gpu_event_latency [--rounds N]
#include <cuda_runtime.h>
#include <fmt/format.h>

#include "check_cuda.h"
#include "probe_driver.h"
#include "probe/event_latency.h"

namespace {

using namespace megalith::kernels;

int run(int argc, char** argv) {
  int rounds = 0;
  if (!parse_rounds(argc, argv, "megalith_gpu_event_latency", &rounds)) return 2;
  int sms = 0;
  CHECK_CUDA(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  constexpr int kMostFloats = 96;
  uint64_t* counter = nullptr;
  uint32_t* errors = nullptr;
  float* vectors = nullptr;
  constexpr size_t kCounterBytes = EVENT_MAX_COUNTERS * EVENT_COUNTER_STRIDE * sizeof(uint64_t);
  CHECK_CUDA(cudaMalloc(&counter, kCounterBytes));
  CHECK_CUDA(cudaMalloc(&errors, 4));
  const size_t vectors_bytes = size_t(2) * size_t(sms) * kMostFloats * sizeof(float);
  CHECK_CUDA(cudaMalloc(&vectors, vectors_bytes));
  uint64_t* tagged = nullptr;
  const size_t tagged_bytes = size_t(2) * size_t(sms) * kMostFloats * sizeof(uint64_t);
  CHECK_CUDA(cudaMalloc(&tagged, tagged_bytes));
  CHECK_CUDA(cudaMemset(errors, 0, 4));
  fmt::print("{} rounds a launch; us a round (the best of 3 launches after a warm-up)\n", rounds);
  struct Scheme {
    const char* name;
    int counters, relaxed_poll, flags, tagged, accumulate;
  };
  const Scheme schemes[] = {{"one counter, acquire polls (the megakernel's)", 1, 0},
                            {"one counter, relaxed polls", 1, 1},
                            {"8 counters, acquire polls", 8, 0},
                            {"8 counters, relaxed polls", 8, 1},
                            {"32 counters, relaxed polls", 32, 1},
                            {"a flag a CTA, relaxed polls", 1, 1, 1},
                            {"no signal: the round in the data (loads only)", 1, 0, 0, 1},
                            {"split-K: red.f32 of the whole vector, then one counter", 1, 0, 0,
                             0, kAccumulateF32},
                            {"split-K: red.v4.f32 of the whole vector, then one counter", 1, 0,
                             0, 0, kAccumulateF32x4},
                            {"split-K: red.u64 (fixed point) of the whole vector, then one counter",
                             1, 0, 0, 0, kAccumulateU64}};
  fmt::print("  {:>5} {:>14} {:>10}  {}\n", "CTAs", "floats a CTA", "us", "signal");
  for (const int ctas : {2, sms}) {
    for (const int floats : {0, 8, 16, 32, kMostFloats}) {
      for (const Scheme& scheme : schemes) {
        if (scheme.tagged != 0 && floats == 0) continue;  // no data, nothing to carry the round
        if (scheme.accumulate != kAccumulateNone && floats == 0) continue;
        // The narrow rows only for the split-K schemes and the signal they compare with.
        const bool megakernels = &scheme == &schemes[0];
        if ((floats == 8 || floats == 16) && scheme.accumulate == kAccumulateNone && !megakernels) {
          continue;
        }
        const EventLatencyArgs args{counter,
                                    vectors,
                                    errors,
                                    rounds,
                                    floats,
                                    scheme.counters,
                                    scheme.relaxed_poll,
                                    scheme.flags,
                                    scheme.tagged,
                                    tagged,
                                    scheme.accumulate};
        const auto reset = [&] {
          cudaError_t e = cudaMemset(counter, 0, kCounterBytes);
          if (e == cudaSuccess) e = cudaMemset(tagged, 0, tagged_bytes);
          return e == cudaSuccess ? cudaMemset(vectors, 0, vectors_bytes) : e;
        };
        float best = 0;
        if (best_of_launches(reset, [&] { return launch_event_latency(args, ctas, nullptr); },
                             &best) != 0) {
          return 1;
        }
        fmt::print("  {:>5} {:>14} {:>10.3f}  {}\n", ctas, floats, double(best) * 1e3 / rounds,
                   scheme.name);
      }
    }
  }
  return errors_verdict(errors);
}

}  // namespace

int main(int argc, char** argv) { return run(argc, argv); }
