// One KV head whose cache is not split: the rotary task, then single-split attention, with
// the same numerics as the two tasks run one after the other (the queries rotated in place,
// key and value appended to the caches at the token's position).
#include "../task_context.h"

namespace megalith::cpu {

void run_rope_attention(const TaskContext& ctx, const abi::TaskDesc& t) {
  const abi::RopeAttentionParams& p = t.params.rope_attention;
  abi::TaskDesc rope = t;
  rope.kind = abi::TaskKind::kQkNormRopeKvAppend;
  rope.num_refs = 9;
  rope.refs[9] = {};
  rope.params.rope = {p.eps, p.head_dim, p.group};
  run_qk_norm_rope_kv_append(ctx, rope);

  abi::TaskDesc attention = t;
  attention.kind = abi::TaskKind::kAttentionPartial;
  attention.num_refs = 6;
  attention.refs[1] = t.refs[7];  // k_cache
  attention.refs[2] = t.refs[8];  // v_cache
  attention.refs[3] = t.refs[5];  // positions
  attention.refs[4] = t.refs[9];  // out
  for (int i = 5; i < abi::kMaxTaskRefs; ++i) attention.refs[i] = {};
  attention.params.attention = {p.scale, p.head_dim, p.group, 0, 1};
  run_attention_partial(ctx, attention);
}

}  // namespace megalith::cpu
