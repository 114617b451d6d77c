// The random-weight formula behind megalith's random checkpoints, shared by the host (which
// writes checkpoint files) and the GPU (which fills weights in place, so an 8B benchmark needs
// no 16 GB file). Element `index` of a weight is a pure function of (seed, name, index):
//
//   RandomWeightParams p = random_weight_params(seed, name, shape);   // host: hashes the name
//   float v = random_weight_value(p, index);                          // host or device
//
// Every step below is exact or a single rounding, so host and device agree to the bit.
#pragma once

#include <stdint.h>

#include "megalith/abi/task_abi.h"

namespace megalith::abi {

enum class RandomWeightKind : uint32_t { kMatrix = 0, kNorm = 1, kBias = 2 };

struct RandomWeightParams {
  uint64_t stream = 0;  // the weight's hashed (seed, name)
  RandomWeightKind kind = RandomWeightKind::kMatrix;
  float std_dev = 0;  // matrices
};

// splitmix64: a well-mixed 64-bit hash, cheap on a CPU core and a GPU thread alike.
inline MEGALITH_HOST_DEVICE uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

inline MEGALITH_HOST_DEVICE float random_weight_value(const RandomWeightParams& p, int64_t index) {
  const uint64_t bits = splitmix64(p.stream + uint64_t(index));
  // Uniform in [-1, 1) from the top 24 bits (exact in float); variance 1/3.
  const float u = float(bits >> 40) * (1.0f / 8388608.0f) - 1.0f;
  switch (p.kind) {
    case RandomWeightKind::kNorm:
      return 1.0f + 0.25f * u;  // 0.25f * u is exact: a fused multiply-add rounds the same
    case RandomWeightKind::kBias:
      return 0.1f * u;
    case RandomWeightKind::kMatrix:
      break;
  }
  // Times sqrt(3) so that the uniform gets the standard deviation (two roundings, in order).
  return u * p.std_dev * 1.73205080756887729f;
}

}  // namespace megalith::abi
