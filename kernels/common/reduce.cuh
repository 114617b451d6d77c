// Warp and consumer-block reductions. Block reductions run over the CONSUMER_THREADS of a
// worker (never the producer warp) through a small shared area, and end with a barrier so
// the area can be reused at once.
//
//   float s = warp_sum(partial);                         // every lane gets the sum
//   double total = block_sum(partial, reduce_area);      // every consumer thread gets it
//   ArgMax best = block_argmax({value, id}, reduce_area); // ties: the lower id
#pragma once

#include <stdint.h>

#include "common/sync.cuh"
#include "megakernel/layout.h"

namespace megalith::kernels {

template <class T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// A value and the id it belongs to; the larger value wins, and on a tie the lower id, so the
// result is the first maximum in id order whatever the reduction order.
struct ArgMax {
  float value;
  int32_t id;
};
__device__ __forceinline__ ArgMax better(ArgMax a, ArgMax b) {
  if (b.value > a.value || (b.value == a.value && b.id < a.id)) return b;
  return a;
}
__device__ __forceinline__ ArgMax warp_argmax(ArgMax a) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const ArgMax other{__shfl_xor_sync(0xffffffffu, a.value, o),
                       __shfl_xor_sync(0xffffffffu, a.id, o)};
    a = better(a, other);
  }
  return a;
}

// The RMS norm's scale from a sum of squares, in double: rsqrt(sum * inv_count + eps), with
// inv_count = 1 / count worked out before the sum arrives, so neither a double division nor
// a square root and a second division is on the chain after it (each tens of dependent
// instructions). It rounds to the float that the CPU reference's 1.0 / sqrt(sum / count + eps)
// rounds to unless the two doubles (a few units of the last place apart) straddle a float
// rounding boundary, about one case in 10^8.
__device__ __forceinline__ float rms_scale(double sum, double inv_count, double eps) {
  return float(rsqrt(sum * inv_count + eps));
}

// Sum over the consumer threads, in double. `area` holds CONSUMER_WARPS doubles.
__device__ __forceinline__ double block_sum(double v, double* area) {
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  v = warp_sum(v);
  if (lane == 0) area[warp] = v;
  consumer_sync();
  double total = 0;
#pragma unroll
  for (int w = 0; w < CONSUMER_WARPS; ++w) total += area[w];
  consumer_sync();
  return total;
}

// Arg-max over the consumer threads. `area` holds CONSUMER_WARPS doubles.
__device__ __forceinline__ ArgMax block_argmax(ArgMax a, double* area) {
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  a = warp_argmax(a);
  auto* slots = reinterpret_cast<ArgMax*>(area);
  if (lane == 0) slots[warp] = a;
  consumer_sync();
  ArgMax best = slots[0];
#pragma unroll
  for (int w = 1; w < CONSUMER_WARPS; ++w) best = better(best, slots[w]);
  consumer_sync();
  return best;
}

}  // namespace megalith::kernels
