#include "megalith/core/dtype.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

namespace megalith {
namespace {

// The representable neighbour of `x` closest to it, ties to the even bit pattern, found by
// searching all patterns near the truncation: a slow but obviously correct rounding.
template <typename ToFloat>
uint16_t nearest_even(float x, ToFloat to_float) {
  uint16_t best = 0;
  double best_err = std::numeric_limits<double>::infinity();
  for (uint32_t b = 0; b < 0x10000; ++b) {
    const float v = to_float(uint16_t(b));
    if (std::isnan(v) || std::signbit(v) != std::signbit(x)) continue;
    const double err = std::fabs(double(v) - double(x));
    if (err < best_err || (err == best_err && (b & 1) == 0)) {
      best_err = err;
      best = uint16_t(b);
    }
  }
  return best;
}

TEST(DType, Bf16RoundTripIsExact) {
  for (uint32_t b = 0; b < 0x10000; ++b) {
    const float f = bf16_to_float(uint16_t(b));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(f))));
    } else {
      EXPECT_EQ(float_to_bf16(f), b);
    }
  }
}

TEST(DType, F16RoundTripIsExact) {
  for (uint32_t b = 0; b < 0x10000; ++b) {
    const float f = f16_to_float(uint16_t(b));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(f16_to_float(float_to_f16(f))));
    } else {
      EXPECT_EQ(float_to_f16(f), b) << "bits " << b;
    }
  }
}

TEST(DType, F16KnownValues) {
  EXPECT_EQ(f16_to_float(0x3c00), 1.0f);
  EXPECT_EQ(f16_to_float(0xc000), -2.0f);
  EXPECT_EQ(f16_to_float(0x7bff), 65504.0f);
  EXPECT_EQ(f16_to_float(0x0001), std::ldexp(1.0f, -24));
  EXPECT_TRUE(std::isinf(f16_to_float(0x7c00)));
  EXPECT_EQ(float_to_f16(65520.0f), 0x7c00);      // rounds up past the largest finite value
  EXPECT_EQ(float_to_f16(65519.0f), 0x7bff);
  EXPECT_EQ(float_to_f16(std::ldexp(1.0f, -25)), 0x0000);  // exactly half the smallest: to even
  EXPECT_EQ(float_to_f16(std::ldexp(1.5f, -25)), 0x0001);
}

TEST(DType, RoundingIsNearestEvenOnRandomFloats) {
  std::mt19937 rng(1234);
  std::uniform_real_distribution<float> mantissa(-1.0f, 1.0f);
  std::uniform_int_distribution<int> exponent(-26, 17);
  for (int i = 0; i < 300; ++i) {
    const float x = std::ldexp(mantissa(rng), exponent(rng));
    EXPECT_EQ(float_to_bf16(x), nearest_even(x, bf16_to_float)) << x;
    // Beyond 65520 IEEE rounding overflows to infinity (checked in F16KnownValues).
    if (std::fabs(x) < 65520.0f) {
      EXPECT_EQ(float_to_f16(x), nearest_even(x, f16_to_float)) << x;
    }
  }
  // Exact ties: 1 + 2^-8 lies halfway between two bf16 values; the even one (1.0) wins.
  EXPECT_EQ(float_to_bf16(1.0f + std::ldexp(1.0f, -8)), float_to_bf16(1.0f));
  EXPECT_EQ(float_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)), float_to_bf16(1.0f) + 2);
  EXPECT_EQ(float_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);
  EXPECT_EQ(float_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
}

TEST(DType, Names) {
  for (DType t : {DType::kF32, DType::kBF16, DType::kF16}) {
    EXPECT_EQ(dtype_from_safetensors_name(dtype_safetensors_name(t)), t);
    EXPECT_EQ(dtype_from_torch_name(dtype_torch_name(t)), t);
    EXPECT_EQ(dtype_from_short_name(dtype_short_name(t)), t);
  }
  EXPECT_EQ(dtype_from_torch_name("torch.bfloat16"), DType::kBF16);
  EXPECT_FALSE(dtype_from_safetensors_name("I64").has_value());
  EXPECT_FALSE(dtype_from_torch_name("int8").has_value());
}

TEST(DType, BulkConversionMatchesScalar) {
  const float values[] = {0.0f, -1.5f, 3.14159f, 1e-6f, 65000.0f};
  uint16_t packed[5];
  float back[5];
  for (DType t : {DType::kBF16, DType::kF16}) {
    convert_from_float(t, values, packed, 5);
    convert_to_float(t, packed, back, 5);
    for (int i = 0; i < 5; ++i) {
      const uint16_t bits = t == DType::kBF16 ? float_to_bf16(values[i]) : float_to_f16(values[i]);
      EXPECT_EQ(packed[i], bits);
      EXPECT_EQ(back[i], t == DType::kBF16 ? bf16_to_float(bits) : f16_to_float(bits));
    }
  }
}

}  // namespace
}  // namespace megalith
