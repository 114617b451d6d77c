// Element types of weights and activations, and exact host conversions.
//
//   uint16_t bits = float_to_bf16(x);   // round to nearest, ties to even; NaN stays NaN
//   float y = bf16_to_float(bits);      // exact
//   size_t n = dtype_size(DType::kBF16);
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace megalith {

enum class DType : uint8_t { kF32, kBF16, kF16 };

constexpr size_t dtype_size(DType t) { return t == DType::kF32 ? 4 : 2; }

// Names as safetensors writes them ("F32", "BF16", "F16").
std::string_view dtype_safetensors_name(DType t);
std::optional<DType> dtype_from_safetensors_name(std::string_view name);
// Names as torch/transformers write them ("float32", "bfloat16", "float16").
std::string_view dtype_torch_name(DType t);
std::optional<DType> dtype_from_torch_name(std::string_view name);
// Short names for the CLI ("f32", "bf16", "f16").
std::string_view dtype_short_name(DType t);
std::optional<DType> dtype_from_short_name(std::string_view name);

inline uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline float bf16_to_float(uint16_t h) { return bits_float(uint32_t(h) << 16); }

inline uint16_t float_to_bf16(float f) {
  uint32_t u = float_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x0040u);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest, ties to even
  return uint16_t(u >> 16);
}

float f16_to_float(uint16_t h);
uint16_t float_to_f16(float f);  // round to nearest, ties to even, overflow to infinity

// Converts `n` elements stored as `t` at `src` to float.
void convert_to_float(DType t, const void* src, float* dst, size_t n);
// Converts `n` floats to `t`, rounding to nearest even.
void convert_from_float(DType t, const float* src, void* dst, size_t n);

}  // namespace megalith
