#include "megalith/core/dtype.h"

namespace megalith {

namespace {
struct DTypeNames {
  DType type;
  std::string_view safetensors, torch, short_name;
};
constexpr DTypeNames kNames[] = {
    {DType::kF32, "F32", "float32", "f32"},
    {DType::kBF16, "BF16", "bfloat16", "bf16"},
    {DType::kF16, "F16", "float16", "f16"},
};
// Memory-mapped weights need not be 2-byte aligned (safetensors headers have any length).
uint16_t load_u16(const void* base, size_t i) {
  uint16_t v;
  std::memcpy(&v, static_cast<const char*>(base) + 2 * i, 2);
  return v;
}

const DTypeNames& names(DType t) {
  for (const auto& n : kNames)
    if (n.type == t) return n;
  return kNames[0];
}
}  // namespace

std::string_view dtype_safetensors_name(DType t) { return names(t).safetensors; }
std::string_view dtype_torch_name(DType t) { return names(t).torch; }
std::string_view dtype_short_name(DType t) { return names(t).short_name; }

std::optional<DType> dtype_from_safetensors_name(std::string_view name) {
  for (const auto& n : kNames)
    if (n.safetensors == name) return n.type;
  return std::nullopt;
}
std::optional<DType> dtype_from_torch_name(std::string_view name) {
  if (name.starts_with("torch.")) name.remove_prefix(6);
  for (const auto& n : kNames)
    if (n.torch == name) return n.type;
  if (name == "float" || name == "fp32") return DType::kF32;
  if (name == "half" || name == "fp16") return DType::kF16;
  if (name == "bf16") return DType::kBF16;
  return std::nullopt;
}
std::optional<DType> dtype_from_short_name(std::string_view name) {
  for (const auto& n : kNames)
    if (n.short_name == name) return n.type;
  return std::nullopt;
}

float f16_to_float(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  if (exp == 0x1f) return bits_float(sign | 0x7f800000u | (mant << 13));  // inf / NaN
  if (exp == 0) {
    // Zero or subnormal: value = mant * 2^-24, exact in float.
    float v = float(mant) * 5.9604644775390625e-8f;
    return sign ? -v : v;
  }
  return bits_float(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t float_to_f16(float f) {
  uint32_t u = float_bits(f);
  uint16_t sign = uint16_t((u >> 16) & 0x8000u);
  uint32_t abs = u & 0x7fffffffu;
  if (abs > 0x7f800000u) return sign | 0x7e00u;   // NaN
  if (abs >= 0x477ff000u) return sign | 0x7c00u;  // rounds to >= 65520: infinity
  if (abs < 0x38800000u) {
    // Result is subnormal (or zero): round abs / 2^-24 to an integer, ties to even.
    int shift = 126 - int(abs >> 23);  // float exponent e: value = 1.m * 2^(e-127)
    if (shift > 24) return sign;       // below half the smallest subnormal
    uint32_t mant = (abs & 0x7fffffu) | 0x800000u;
    // value / 2^-24 = mant * 2^(e-127-23+24) = mant >> (126 - e) with shift = 126-e in [14,24]
    uint32_t q = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1);
    uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1u))) ++q;
    return sign | uint16_t(q);
  }
  // Normal: rebias exponent (127 -> 15) and round 23 mantissa bits to 10.
  uint32_t v = abs - (112u << 23);
  v += 0xfffu + ((v >> 13) & 1u);
  return sign | uint16_t(v >> 13);
}

void convert_to_float(DType t, const void* src, float* dst, size_t n) {
  switch (t) {
    case DType::kF32:
      std::memcpy(dst, src, n * 4);
      return;
    case DType::kBF16:
      for (size_t i = 0; i < n; ++i) dst[i] = bf16_to_float(load_u16(src, i));
      return;
    case DType::kF16:
      for (size_t i = 0; i < n; ++i) dst[i] = f16_to_float(load_u16(src, i));
      return;
  }
}

void convert_from_float(DType t, const float* src, void* dst, size_t n) {
  switch (t) {
    case DType::kF32:
      std::memcpy(dst, src, n * 4);
      return;
    case DType::kBF16: {
      auto* d = static_cast<uint16_t*>(dst);
      for (size_t i = 0; i < n; ++i) d[i] = float_to_bf16(src[i]);
      return;
    }
    case DType::kF16: {
      auto* d = static_cast<uint16_t*>(dst);
      for (size_t i = 0; i < n; ++i) d[i] = float_to_f16(src[i]);
      return;
    }
  }
}

}  // namespace megalith
