// Reduces the lm_head tiles: the token that follows this position (the prompt's while it
// lasts, else greedy or sampled) and its log-probability.
#include <cmath>
#include <limits>

#include "../task_context.h"

namespace megalith::cpu {

void run_sample(const TaskContext& ctx, const abi::TaskDesc& t) {
  const RefView partials(ctx, t.refs[0]), logits(ctx, t.refs[1]), control(ctx, t.refs[2]);
  const RefView prompt(ctx, t.refs[3]), tokens(ctx, t.refs[4]), logprobs(ctx, t.refs[5]);
  const int64_t tiles = t.params.sample.num_tiles;
  const int64_t slots = logits.rows();  // a tile's row of partials holds one record per slot
  const auto* all = partials.as<abi::LmPartial>();
  for (int64_t slot = 0; slot < slots; ++slot) {
    const abi::StepControl& c = control.row_as<abi::StepControl>(slot);
    const int32_t pos = abi::slot_position(c, ctx.step);
    float max_logit = -std::numeric_limits<float>::infinity(), best_key = max_logit;
    int32_t argmax = 0, sampled = 0;
    for (int64_t i = 0; i < tiles; ++i) {
      const abi::LmPartial& p = all[i * slots + slot];
      if (p.max_logit > max_logit) {
        max_logit = p.max_logit;
        argmax = p.argmax;
      }
      if (p.sample_key > best_key) {
        best_key = p.sample_key;
        sampled = p.sample_id;
      }
    }
    double total = 0;
    for (int64_t i = 0; i < tiles; ++i) {
      const abi::LmPartial& p = all[i * slots + slot];
      total += double(p.sum_exp) * std::exp(double(p.max_logit) - double(max_logit));
    }
    const double lse = double(max_logit) + std::log(total);
    int32_t next = c.temperature > 0 ? sampled : argmax;
    if (c.active && pos + 1 < c.num_prompt) next = prompt.get_int(slot, pos + 1);
    tokens.set_int(slot, pos, next);
    logprobs.set(slot, pos, float(double(logits.get(slot, next)) - lse));
  }
}

}  // namespace megalith::cpu
