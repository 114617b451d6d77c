// The step's token (forced from the prompt, else sampled last step), its embedding row and
// its position.
#include "../task_context.h"

namespace megalith::cpu {

void run_embedding(const TaskContext& ctx, const abi::TaskDesc& t) {
  const RefView control(ctx, t.refs[0]), prompt(ctx, t.refs[1]), tokens(ctx, t.refs[2]);
  const RefView table(ctx, t.refs[3]), x(ctx, t.refs[4]), positions(ctx, t.refs[5]);
  const abi::StepControl& c = *control.as<abi::StepControl>();
  const int32_t pos = int32_t(ctx.step - c.first_step);
  const int32_t token = pos < c.num_prompt ? prompt.get_int(0, pos) : tokens.get_int(0, pos - 1);
  for (int64_t i = 0; i < x.cols(); ++i) x.set(0, i, table.get(token, i));
  positions.set_int(0, 0, pos);
}

}  // namespace megalith::cpu
