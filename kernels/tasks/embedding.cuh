// The step's token (forced from the prompt, else sampled last step), its embedding row and
// its position.
#pragma once

#include "megakernel/task_env.cuh"

namespace megalith::kernels {

__device__ inline void run_embedding(TaskEnv& env, const abi::TaskDesc& t) {
  const Ref control = env.ref(t, 0), prompt = env.ref(t, 1), tokens = env.ref(t, 2);
  const Ref table = env.ref(t, 3), x = env.ref(t, 4), positions = env.ref(t, 5);
  for (int slot = 0; slot < x.rows; ++slot) {
    const abi::StepControl c = control.row_as<const abi::StepControl>(slot);
    const int32_t pos = abi::slot_position(c, env.step);
    const int32_t token = !c.active             ? 0
                          : pos < c.num_prompt ? prompt.get_int(slot, pos)
                                               : tokens.get_int(slot, pos - 1);
    for (int i = env.tid; i < x.cols; i += CONSUMER_THREADS) x.set(slot, i, table.get(token, i));
    if (env.tid == 0) positions.set_int(slot, 0, pos);
  }
}

}  // namespace megalith::kernels
