// Combines one KV head's split partials, weighting each by exp(its log-sum-exp), and appends
// the step's key and value (split 0's new_kv) to the caches.
#include <cmath>
#include <limits>

#include "../task_context.h"

namespace megalith::cpu {

void run_attention_merge(const TaskContext& ctx, const abi::TaskDesc& t) {
  const RefView partial(ctx, t.refs[0]), lse(ctx, t.refs[1]), out(ctx, t.refs[2]);
  const RefView new_kv(ctx, t.refs[3]), positions(ctx, t.refs[4]);
  const RefView k_cache(ctx, t.refs[5]), v_cache(ctx, t.refs[6]);
  const abi::AttentionParams& p = t.params.attention;
  const int64_t hd = p.head_dim, group = p.group, splits = p.num_splits;
  const int64_t rows_per_split = partial.rows() / splits;  // the query group
  for (int64_t row = 0; row < rows_per_split; ++row) {
    double max_lse = -std::numeric_limits<double>::infinity();
    for (int64_t s = 0; s < splits; ++s) max_lse = std::max<double>(max_lse, lse.get(s * rows_per_split + row, 0));
    double total = 0;
    for (int64_t s = 0; s < splits; ++s) total += std::exp(lse.get(s * rows_per_split + row, 0) - max_lse);
    const int64_t r = row / group, g = row % group;
    for (int64_t i = 0; i < hd; ++i) {
      double acc = 0;
      for (int64_t s = 0; s < splits; ++s) {
        const int64_t pr = s * rows_per_split + row;
        acc += std::exp(lse.get(pr, 0) - max_lse) * double(partial.get(pr, i));
      }
      out.set(r, g * hd + i, float(acc / total));
    }
  }
  const int32_t pos = positions.get_int(0, 0);
  if (pos < 0 || pos >= k_cache.rows()) {
    fill_nan(out);  // a broken graph's stale position, as run_attention_partial's
    return;
  }
  for (int64_t i = 0; i < hd; ++i) {
    k_cache.set(pos, i, new_kv.get(0, i));
    v_cache.set(pos, i, new_kv.get(0, hd + i));
  }
}

}  // namespace megalith::cpu
