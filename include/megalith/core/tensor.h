// Shapes and non-owning views of host tensors (weights memory-mapped from a checkpoint,
// activations of the CPU reference).
//
//   TensorView w = weights.get("model.norm.weight");
//   std::vector<float> v = w.to_float();     // converts bf16/f16 exactly
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "megalith/core/dtype.h"

namespace megalith {

using Shape = std::vector<int64_t>;

inline int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}
std::string shape_to_string(const Shape& s);  // "[4096, 1024]"

struct TensorView {
  DType dtype = DType::kF32;
  Shape shape;
  const void* data = nullptr;

  int64_t numel() const { return shape_numel(shape); }
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype); }
  std::vector<float> to_float() const;
  // Row `r` of a 2-D tensor, converted to float into `out` (shape[1] elements).
  void row_to_float(int64_t r, float* out) const;
};

}  // namespace megalith
