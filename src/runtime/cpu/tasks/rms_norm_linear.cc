// out = rms_norm(x) * norm_weight @ W[tile]^T + bias[tile]
#include <vector>

#include "../task_context.h"

namespace megalith::cpu {

void run_rms_norm_linear(const TaskContext& ctx, const abi::TaskDesc& t) {
  const RefView x(ctx, t.refs[0]), gamma(ctx, t.refs[1]), w(ctx, t.refs[2]), bias(ctx, t.refs[3]);
  const RefView out(ctx, t.refs[4]);
  std::vector<float> h(static_cast<size_t>(x.cols()));
  for (int64_t r = 0; r < x.rows(); ++r) {
    rms_normalize_row(x, r, gamma, t.params.linear.eps, h.data());
    for (int64_t o = 0; o < w.rows(); ++o) {
      const float b = bias.present() ? bias.get(0, o) : 0.0f;
      out.set(r, o, float(dot_row(h.data(), w, o)) + b);
    }
  }
}

}  // namespace megalith::cpu
