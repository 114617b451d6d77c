// out = silu(h @ Wg[tile]^T + bg) * (h @ Wu[tile]^T + bu), h = rms_norm(x) * norm_weight
#include <cmath>
#include <vector>

#include "../task_context.h"

namespace megalith::cpu {

void run_rms_norm_gate_up_silu(const TaskContext& ctx, const abi::TaskDesc& t) {
  const RefView x(ctx, t.refs[0]), gamma(ctx, t.refs[1]), wg(ctx, t.refs[2]), wu(ctx, t.refs[3]);
  const RefView bg(ctx, t.refs[4]), bu(ctx, t.refs[5]), out(ctx, t.refs[6]);
  std::vector<float> h(static_cast<size_t>(x.cols()));
  for (int64_t r = 0; r < x.rows(); ++r) {
    rms_normalize_row(x, r, gamma, t.params.linear.eps, h.data());
    for (int64_t o = 0; o < wg.rows(); ++o) {
      const float gate = float(dot_row(h.data(), wg, o)) + (bg.present() ? bg.get(0, o) : 0.0f);
      const float up = float(dot_row(h.data(), wu, o)) + (bu.present() ? bu.get(0, o) : 0.0f);
      out.set(r, o, gate / (1.0f + std::exp(-gate)) * up);
    }
  }
}

}  // namespace megalith::cpu
