// One KV head whose cache is not split: norm and rotary on its query heads and key, key and
// value appended to the caches, then attention over every visible cache row, all in one
// task. The rotated query heads stay in shared memory for the pass (they also go to q, as the
// CPU reference leaves them); the appended rows are this CTA's own writes, visible to its
// loads after the barrier.
#pragma once

#include "megakernel/task_env.cuh"
#include "tasks/attention_partial.cuh"
#include "tasks/qk_norm_rope_kv_append.cuh"

namespace megalith::kernels {

__device__ inline void run_rope_attention(TaskEnv& env, const abi::TaskDesc& t) {
  const abi::RopeAttentionParams& p = t.params.rope_attention;
  const RopeRefs f = rope_refs(env, t);
  const abi::RopeParams rope{p.eps, p.head_dim, p.group};
  const abi::AttentionParams attention{p.scale, p.head_dim, p.group, 0, 1};
  float* q_rotated = env.scratch;  // rope_attention_query_floats()
  const AttentionTask a{f.q, f.k_cache, f.v_cache, f.positions,
                        {env.ref(t, 9), Ref{}, p.head_dim, p.group}, attention,
                        env.scratch + rope_attention_query_floats(p.head_dim, p.group), q_rotated};
  for (int r = 0; r < f.q.rows; ++r) {
    norm_rope_row(env, f, rope, r, q_rotated);
    consumer_sync();
    attention_row(env, a, r);
    if (r + 1 < f.q.rows) consumer_sync();  // the next row's rotation overwrites q_rotated
  }
}

}  // namespace megalith::kernels
