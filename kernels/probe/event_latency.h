// The host's entry point into the event-latency probe (event_latency.cu): what one phase
// boundary of the megakernel costs with nothing else running, its floor. Every CTA writes its
// share of a vector, signals a counter with the megakernel's release, waits with its acquire
// until every CTA has signalled, and loads the whole vector as a task loads its input row
// (tests/gpu/event_latency_bench.cc). The signal's alternatives: relaxed polls and one acquire
// fence, the releases spread over several counters that the waiting warp polls together, a
// flag a CTA instead of a counter, and no signal at all but the round in the data. And the
// hand-off of a split-K product: every CTA adds a partial of the whole vector with atomics
// (floats, 4-float vectors, or 64-bit fixed-point words) before the megakernel's signal.
//
//   EventLatencyArgs a = {counter, vectors, errors, rounds, floats_per_cta};
//   megalith::kernels::launch_event_latency(a, ctas, stream);
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace megalith::kernels {

// A round's counters are `counters` words EVENT_COUNTER_STRIDE apart (a 128-byte line each),
// CTA c signalling word c % counters: with one, every release and every poll goes to one line
// of one L2 slice, as the megakernel's events do.
constexpr int EVENT_COUNTER_STRIDE = 16;
constexpr int EVENT_MAX_COUNTERS = 32;

struct EventLatencyArgs {
  uint64_t* counter;        // EVENT_MAX_COUNTERS * EVENT_COUNTER_STRIDE words, zero at launch
  float* vectors;           // two vectors of ctas * floats_per_cta (rounds alternate)
  uint32_t* errors;         // one word, zero before the launch: values loaded wrong, and
                            // waits given up after a second
  int32_t rounds;
  int32_t floats_per_cta;   // 0: the barrier alone; a multiple of 4, at most 96
  int32_t counters = 1;     // 1..EVENT_MAX_COUNTERS; the waiter's lanes poll one each and add up
  int32_t relaxed_poll = 0; // 1: relaxed loads, then one acquire fence once the target is seen
  int32_t flags = 0;        // 1: no counter; CTA c stores the round to word c (a release), the
                            // waiting warp polls every CTA's word (relaxed, then the fence)
  int32_t tagged = 0;       // 1: no counter; the vector's floats carry the round (tagged_round)
  uint64_t* tagged_vectors = nullptr;  // tagged: two vectors of ctas * floats_per_cta words
  int32_t accumulate = 0;   // an EventAccumulate: every CTA adds 1 to each of the vector's
                            // ctas * floats_per_cta elements, then the megakernel's signal
};

// How a CTA adds its partial to the whole vector (EventLatencyArgs::accumulate): relaxed
// reductions at GPU scope of one float, of four (a 16-byte `red.v4.f32`, sm_90), or of one
// 64-bit integer (fixed point, whose sum does not depend on the order of the adds), in
// tagged_vectors; the readers load 64-bit words then, twice the bytes.
enum EventAccumulate : int32_t {
  kAccumulateNone = 0,
  kAccumulateF32 = 1,
  kAccumulateF32x4 = 2,
  kAccumulateU64 = 3,
};

// The vector's floats a CTA loads after each barrier, so the dynamic shared memory it takes.
inline size_t event_latency_smem(int ctas, int floats_per_cta) {
  return size_t(ctas) * size_t(floats_per_cta) * sizeof(float);
}

// `ctas` CTAs (at most one per SM, so all run at once) of 256 threads run `rounds` rounds.
cudaError_t launch_event_latency(const EventLatencyArgs& args, int ctas, cudaStream_t stream);

}  // namespace megalith::kernels
