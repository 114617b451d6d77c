// The step's token (forced from the prompt, else sampled last step), its embedding row and
// its position.
#include "../task_context.h"

namespace megalith::cpu {

void run_embedding(const TaskContext& ctx, const abi::TaskDesc& t) {
  const RefView control(ctx, t.refs[0]), prompt(ctx, t.refs[1]), tokens(ctx, t.refs[2]);
  const RefView table(ctx, t.refs[3]), x(ctx, t.refs[4]), positions(ctx, t.refs[5]);
  for (int64_t slot = 0; slot < x.rows(); ++slot) {
    const abi::StepControl& c = control.row_as<abi::StepControl>(slot);
    const int32_t pos = abi::slot_position(c, ctx.step);
    const int32_t token = !c.active             ? 0
                          : pos < c.num_prompt ? prompt.get_int(slot, pos)
                                               : tokens.get_int(slot, pos - 1);
    for (int64_t i = 0; i < x.cols(); ++i) x.set(slot, i, table.get(token, i));
    positions.set_int(slot, 0, pos);
  }
}

}  // namespace megalith::cpu
