// Split-KV decode attention: one KV head's query group over one slice of the visible cache
// rows. Writes the slice's softmax-normalized output and its log-sum-exp (-inf when the
// slice is empty) per query row; with a single split (no lse ref) the output is the attention
// output itself, the group's heads side by side in row r.
#include <cmath>
#include <limits>
#include <vector>

#include "../task_context.h"

namespace megalith::cpu {

void run_attention_partial(const TaskContext& ctx, const abi::TaskDesc& t) {
  const RefView q(ctx, t.refs[0]), k_cache(ctx, t.refs[1]), v_cache(ctx, t.refs[2]);
  const RefView positions(ctx, t.refs[3]), partial(ctx, t.refs[4]), lse(ctx, t.refs[5]);
  const abi::AttentionParams& p = t.params.attention;
  const int64_t hd = p.head_dim, group = p.group;
  const bool split = lse.present();
  const auto out = [&](int64_t r, int64_t g, int64_t i, float v) {
    if (split) {
      partial.set(r * group + g, i, v);
    } else {
      partial.set(r, g * hd + i, v);
    }
  };
  for (int64_t r = 0; r < q.rows(); ++r) {
    const int64_t visible = int64_t(positions.get_int(0, r)) + 1;
    const int64_t chunk = (visible + p.num_splits - 1) / p.num_splits;
    const int64_t begin = std::min(visible, p.split * chunk);
    const int64_t end = std::min(visible, begin + chunk);
    for (int64_t g = 0; g < group; ++g) {
      const int64_t row = r * group + g;
      if (begin == end) {
        for (int64_t i = 0; i < hd; ++i) out(r, g, i, 0.0f);
        if (split) lse.set(row, 0, -std::numeric_limits<float>::infinity());
        continue;
      }
      std::vector<double> scores(static_cast<size_t>(end - begin));
      double max_score = -std::numeric_limits<double>::infinity();
      for (int64_t s = begin; s < end; ++s) {
        double dot = 0;
        for (int64_t i = 0; i < hd; ++i) dot += double(q.get(r, g * hd + i)) * double(k_cache.get(s, i));
        scores[size_t(s - begin)] = dot * p.scale;
        max_score = std::max(max_score, scores[size_t(s - begin)]);
      }
      double total = 0;
      for (double& sc : scores) total += (sc = std::exp(sc - max_score));
      for (int64_t i = 0; i < hd; ++i) {
        double acc = 0;
        for (int64_t s = begin; s < end; ++s) acc += scores[size_t(s - begin)] * double(v_cache.get(s, i));
        out(r, g, i, float(acc / total));
      }
      if (split) lse.set(row, 0, float(max_score + std::log(total)));
    }
  }
}

}  // namespace megalith::cpu
