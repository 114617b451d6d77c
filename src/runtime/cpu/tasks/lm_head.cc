// One vocabulary tile of the logits, and its summary: max, argmax (lowest id on ties), sum of
// exp relative to the max, and the Gumbel-max sample when the temperature is positive.
#include <cmath>
#include <limits>
#include <vector>

#include "../task_context.h"

namespace megalith::cpu {

void run_lm_head(const TaskContext& ctx, const abi::TaskDesc& t) {
  const RefView x(ctx, t.refs[0]), gamma(ctx, t.refs[1]), w(ctx, t.refs[2]), control(ctx, t.refs[3]);
  const RefView logits(ctx, t.refs[4]), partials(ctx, t.refs[5]);
  std::vector<float> h(static_cast<size_t>(x.cols())), tile(size_t(w.rows()));
  for (int64_t r = 0; r < x.rows(); ++r) {  // r: the slot
    const abi::StepControl& c = control.row_as<abi::StepControl>(r);
    const int32_t pos = abi::slot_position(c, ctx.step);
    const uint64_t seed = uint64_t(c.seed_hi) << 32 | c.seed_lo;
    rms_normalize_row(x, r, gamma, t.params.linear.eps, h.data());
    abi::LmPartial best{-std::numeric_limits<float>::infinity(), 0, 0.0f,
                        -std::numeric_limits<float>::infinity(), 0, 0};
    for (int64_t o = 0; o < w.rows(); ++o) {
      tile[size_t(o)] = float(dot_row(h.data(), w, o));
      logits.set(r, o, tile[size_t(o)]);
      const int32_t id = t.params.linear.row_begin + int32_t(o);
      if (tile[size_t(o)] > best.max_logit) {
        best.max_logit = tile[size_t(o)];
        best.argmax = id;
      }
      if (c.temperature > 0) {
        const double u = abi::sampling_uniform(seed, pos, id);
        const float key = float(double(tile[size_t(o)]) / c.temperature - std::log(-std::log(u)));
        if (key > best.sample_key) {
          best.sample_key = key;
          best.sample_id = id;
        }
      }
    }
    double sum = 0;
    for (float l : tile) sum += std::exp(double(l) - double(best.max_logit));
    best.sum_exp = float(sum);
    partials.as<abi::LmPartial>()[r] = best;
  }
}

}  // namespace megalith::cpu
