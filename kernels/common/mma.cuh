// Tensor-core primitives on sm_80 and later: mma.m16n8k16 with bf16 inputs and f32
// accumulators, and the bf16 packing its fragments need.
//
//   uint32_t a = pack_bf16x2(x0, x1);    // x0 in the low half: the lower k (or n) index
//   Bf16Parts p = split_bf16x3(x);       // x = p.hi + p.mid + p.lo, each a bf16 value
//   mma_bf16_16816(d, a4, b2);           // d (16x8 f32) += A (16x16) * B (16x8)
//
// Fragments (PTX ISA, mma.m16n8k16 .bf16): with g = lane / 4 and t = lane % 4, A's registers
// hold rows g (a0, a2) and g + 8 (a1, a3), columns 2t, 2t+1 (a0, a1) and 2t+8, 2t+9 (a2,
// a3); B's hold rows 2t, 2t+1 (b0) and 2t+8, 2t+9 (b1) of column g; D's hold row g (d0, d1)
// and g + 8 (d2, d3), columns 2t and 2t+1.
#pragma once

#include <cuda_bf16.h>
#include <stdint.h>

namespace megalith::kernels {

// Two floats rounded to bf16 (to nearest even), `lower` in bits 0-15.
__device__ __forceinline__ uint32_t pack_bf16x2(float lower, float upper) {
  uint32_t out;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(out) : "f"(upper), "f"(lower));
  return out;
}

// A float as three bf16 values that add up to it: hi rounds it, mid rounds what hi leaves, lo
// is the rest (bf16 keeps 8 significant bits, so 8 + 8 + 8 hold a float32's 24), so that
// products on bf16 tensor cores keep float32's precision, each part a product of its own.
struct Bf16Parts {
  float hi, mid, lo;
};
__device__ __forceinline__ Bf16Parts split_bf16x3(float x) {
  const float hi = __bfloat162float(__float2bfloat16_rn(x));
  const float rest = x - hi;
  const float mid = __bfloat162float(__float2bfloat16_rn(rest));
  return {hi, mid, rest - mid};
}

// The low halves (select 0x5410) or the high halves (0x7632) of two words side by side, the
// first word's in bits 0-15.
template <uint32_t SELECT>
__device__ __forceinline__ uint32_t permute_halves(uint32_t first, uint32_t second) {
  uint32_t out;
  asm("prmt.b32 %0, %1, %2, %3;" : "=r"(out) : "r"(first), "r"(second), "n"(SELECT));
  return out;
}

__device__ __forceinline__ void mma_bf16_16816(float (&d)[4], const uint32_t (&a)[4],
                                               uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, "
      "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

}  // namespace megalith::kernels
