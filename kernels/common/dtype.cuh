// Typed element access: the model's element types (bf16, f16, f32) as floats, one element or a
// 16-byte vector at a time, and a view of a task's TensorRef.
//
//   Ref w = make_ref(t.refs[2]);            // a ref whose offset is an absolute address
//   float v = w.get(row, col);              // any element type, converted exactly
//   float8 x = load_vec<__nv_bfloat16>(p);  // 8 bf16 from one 16-byte load
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

#include "megalith/abi/task_abi.h"

namespace megalith::kernels {

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }

// The two bf16 elements of a 32-bit word as floats. A bf16 is the upper half of the float it
// stands for: the lower element converts with one shift, the upper with one mask
// (__bfloat162float costs a byte permute and a shift).
__device__ __forceinline__ float bf16_low_to_float(uint32_t word) {
  return __uint_as_float(word << 16);
}
__device__ __forceinline__ float bf16_high_to_float(uint32_t word) {
  return __uint_as_float(word & 0xffff0000u);
}

template <class T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}
template <>
__device__ __forceinline__ __half from_float<__half>(float v) {
  return __float2half_rn(v);
}

// Elements of T in one 16-byte vector.
template <class T>
constexpr int VEC = 16 / int(sizeof(T));

// VEC<T> elements from a 16-byte-aligned address, as floats.
template <class T>
struct VecF {
  float v[VEC<T>];
};
// The VEC<T> elements of a 16-byte vector already loaded, as floats.
template <class T>
__device__ __forceinline__ VecF<T> unpack_vec(const uint4& raw) {
  const T* e = reinterpret_cast<const T*>(&raw);
  VecF<T> out;
#pragma unroll
  for (int i = 0; i < VEC<T>; ++i) out.v[i] = to_float(e[i]);
  return out;
}
template <class T>
__device__ __forceinline__ VecF<T> load_vec(const void* p) {
  return unpack_vec<T>(*static_cast<const uint4*>(p));
}

__device__ __forceinline__ int ref_elem_bytes(abi::RefType t) {
  return t == abi::RefType::kBF16 || t == abi::RefType::kF16 ? 2 : 4;
}

// A task's window of a buffer. Reads of activations go through plain loads (never the
// read-only path): another worker wrote them during this launch.
struct Ref {
  uint8_t* data;  // nullptr when the ref is absent
  abi::RefType type;
  int32_t rows, cols;
  int64_t stride;  // elements between rows

  __device__ bool present() const { return data != nullptr; }
  __device__ int64_t index(int64_t r, int64_t c) const { return r * stride + c; }
  __device__ float get(int64_t r, int64_t c) const {
    const int64_t i = index(r, c);
    switch (type) {
      case abi::RefType::kBF16: return to_float(reinterpret_cast<const __nv_bfloat16*>(data)[i]);
      case abi::RefType::kF16: return to_float(reinterpret_cast<const __half*>(data)[i]);
      case abi::RefType::kI32: return float(reinterpret_cast<const int32_t*>(data)[i]);
      case abi::RefType::kF32: break;
    }
    return reinterpret_cast<const float*>(data)[i];
  }
  __device__ void set(int64_t r, int64_t c, float v) const {
    const int64_t i = index(r, c);
    switch (type) {
      case abi::RefType::kBF16:
        reinterpret_cast<__nv_bfloat16*>(data)[i] = from_float<__nv_bfloat16>(v);
        return;
      case abi::RefType::kF16: reinterpret_cast<__half*>(data)[i] = from_float<__half>(v); return;
      case abi::RefType::kI32: reinterpret_cast<int32_t*>(data)[i] = int32_t(v); return;
      case abi::RefType::kF32: reinterpret_cast<float*>(data)[i] = v; return;
    }
  }
  // Element (r, c) in two steps: its raw bits (zero-extended), then their value. A lane that
  // loads several elements this way has every load in flight at once; get() converts inside
  // its switch on the type, so each of its loads is waited for before the next one issues.
  __device__ uint32_t get_bits(int64_t r, int64_t c) const {
    const int64_t i = index(r, c);
    return ref_elem_bytes(type) == 2 ? uint32_t(reinterpret_cast<const uint16_t*>(data)[i])
                                     : reinterpret_cast<const uint32_t*>(data)[i];
  }
  __device__ float float_of(uint32_t bits) const {
    switch (type) {
      case abi::RefType::kBF16: return bf16_low_to_float(bits);
      case abi::RefType::kF16: return __half2float(__ushort_as_half(uint16_t(bits)));
      case abi::RefType::kI32: return float(int32_t(bits));
      case abi::RefType::kF32: break;
    }
    return __uint_as_float(bits);
  }
  __device__ int32_t get_int(int64_t r, int64_t c) const {
    return reinterpret_cast<const int32_t*>(data)[index(r, c)];
  }
  __device__ void set_int(int64_t r, int64_t c, int32_t v) const {
    reinterpret_cast<int32_t*>(data)[index(r, c)] = v;
  }
  template <class T>
  __device__ T* as() const {
    return reinterpret_cast<T*>(data);
  }
  // Row r reinterpreted (a slot's control block).
  template <class T>
  __device__ T& row_as(int64_t r) const {
    return *reinterpret_cast<T*>(data + index(r, 0) * ref_elem_bytes(type));
  }
};

// The device's copies of the descriptors hold absolute addresses in TensorRef::offset
// (megakernel/layout.h, QueueEntry).
__device__ __forceinline__ Ref make_ref(const abi::TensorRef& r) {
  uint8_t* data = r.buffer == abi::kNoBuffer ? nullptr : reinterpret_cast<uint8_t*>(r.offset);
  return {data, r.type, r.rows, r.cols, r.row_stride};
}

}  // namespace megalith::kernels
