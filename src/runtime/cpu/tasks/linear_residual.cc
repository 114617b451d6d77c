// residual[tile] += x @ W[tile]^T + bias[tile], in place
#include <vector>

#include "../task_context.h"

namespace megalith::cpu {

void run_linear_residual(const TaskContext& ctx, const abi::TaskDesc& t) {
  const RefView x(ctx, t.refs[0]), w(ctx, t.refs[1]), bias(ctx, t.refs[2]), res(ctx, t.refs[3]);
  std::vector<float> in(static_cast<size_t>(x.cols()));
  for (int64_t r = 0; r < x.rows(); ++r) {
    for (int64_t i = 0; i < x.cols(); ++i) in[size_t(i)] = x.get(r, i);
    for (int64_t o = 0; o < w.rows(); ++o) {
      const float b = bias.present() ? bias.get(0, o) : 0.0f;
      res.set(r, o, res.get(r, o) + (float(dot_row(in.data(), w, o)) + b));
    }
  }
}

}  // namespace megalith::cpu
