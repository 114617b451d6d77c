#include "megalith/core/tensor.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace megalith {

std::string shape_to_string(const Shape& s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

std::vector<float> TensorView::to_float() const {
  std::vector<float> out(static_cast<size_t>(numel()));
  convert_to_float(dtype, data, out.data(), out.size());
  return out;
}

void TensorView::row_to_float(int64_t r, float* out) const {
  const int64_t cols = shape.back();
  const auto* base = static_cast<const char*>(data) + size_t(r * cols) * dtype_size(dtype);
  convert_to_float(dtype, base, out, size_t(cols));
}

}  // namespace megalith
