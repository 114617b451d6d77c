#include <cmath>
#include <limits>
#include <vector>

#include "task_context.h"

namespace megalith::cpu {

void rms_normalize_row(const RefView& x, int64_t r, const RefView& gamma, double eps, float* out) {
  double sum_sq = 0;
  for (int64_t i = 0; i < x.cols(); ++i) {
    const double v = x.get(r, i);
    sum_sq += v * v;
  }
  const float inv_rms = float(1.0 / std::sqrt(sum_sq / double(x.cols()) + eps));
  for (int64_t i = 0; i < x.cols(); ++i) {
    const float g = gamma.present() ? gamma.get(0, i) : 1.0f;
    out[i] = g * (x.get(r, i) * inv_rms);
  }
}

void fill_nan(const RefView& r) {
  if (!r.present()) return;
  for (int64_t i = 0; i < r.rows(); ++i) {
    for (int64_t j = 0; j < r.cols(); ++j) r.set(i, j, std::numeric_limits<float>::quiet_NaN());
  }
}

double dot_row(const float* in, const RefView& w, int64_t row) {
  double acc = 0;
  for (int64_t i = 0; i < w.cols(); ++i) acc += double(in[i]) * double(w.get(row, i));
  return acc;
}

void run_task(const TaskContext& ctx, const abi::TaskDesc& t) {
  switch (t.kind) {
#define MEGALITH_TASK(Name, snake, refs) \
  case abi::TaskKind::k##Name:           \
    return run_##snake(ctx, t);
#include "megalith/abi/tasks.def"
#undef MEGALITH_TASK
  }
}

}  // namespace megalith::cpu
