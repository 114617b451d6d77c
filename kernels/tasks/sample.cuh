// Reduces the lm_head tiles (one warp): the token that follows this position (the prompt's
// while it lasts, else greedy or Gumbel-max sampled) and its log-probability.
#pragma once

#include <math.h>

#include "common/reduce.cuh"
#include "megakernel/task_env.cuh"

namespace megalith::kernels {

__device__ inline void run_sample(TaskEnv& env, const abi::TaskDesc& t) {
  // Every claim of the step has been made (each linear comes before sampling): the claim
  // counters start over for the next step, whose claims wait for this task's event.
  const ClaimArgs& claims = env.args.claims;
  if (claims.counters != nullptr) {
    for (uint32_t i = env.tid; i < claims.num_ops; i += CONSUMER_THREADS) claims.counters[i] = 0;
  }
  if (env.warp != 0) return;
  const Ref partials = env.ref(t, 0), logits = env.ref(t, 1), control = env.ref(t, 2);
  const Ref prompt = env.ref(t, 3), tokens = env.ref(t, 4), logprobs = env.ref(t, 5);
  const int32_t tiles = t.params.sample.num_tiles;
  const int slots = logits.rows;  // a tile's row of partials holds one record per slot
  const abi::LmPartial* all = partials.as<const abi::LmPartial>();
  for (int slot = 0; slot < slots; ++slot) {
    const abi::StepControl c = control.row_as<const abi::StepControl>(slot);
    const int32_t pos = abi::slot_position(c, env.step);
    // Tiles are in id order, so the lowest id among equal values is the CPU's first maximum.
    ArgMax best{-INFINITY, 0}, sampled{-INFINITY, 0};
    for (int i = env.lane; i < tiles; i += 32) {
      const abi::LmPartial p = all[i * slots + slot];
      best = better(best, {p.max_logit, p.argmax});
      sampled = better(sampled, {p.sample_key, p.sample_id});
    }
    best = warp_argmax(best);
    sampled = warp_argmax(sampled);
    double total = 0;
    for (int i = env.lane; i < tiles; i += 32) {
      const abi::LmPartial p = all[i * slots + slot];
      total += double(p.sum_exp) * exp(double(p.max_logit) - double(best.value));
    }
    total = warp_sum(total);
    if (env.lane == 0) {
      const double lse = double(best.value) + log(total);
      int32_t next = c.temperature > 0 ? sampled.id : best.id;
      if (c.active && pos + 1 < c.num_prompt) next = prompt.get_int(slot, pos + 1);
      const float logprob = float(double(logits.get(slot, next)) - lse);
      tokens.set_int(slot, pos, next);
      logprobs.set(slot, pos, logprob);
      // The host streams tokens as they come only for a single sequence.
      if (env.args.published && slots == 1) {
        env.args.published[pos] = {next, logprob};
        st_release_sys(env.args.published_count, uint64_t(pos) + 1);
      }
    }
    __syncwarp();
  }
}

}  // namespace megalith::kernels
