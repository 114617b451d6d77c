// Split-KV decode attention of one KV head's query group over one slice of the visible cache
// rows, for the step's single token. First its query heads and key are normalized (when the
// model has a per-head norm) and rotated; the key and value at the token's position are the
// task's own (rounded to the cache's type, as the cache would hold them). Writes the slice's
// softmax-normalized output and its log-sum-exp (-inf when the slice is empty); with a single
// split (no lse ref) the output is the attention output itself, the group's heads side by
// side, and the task appends key and value to the caches; with several, split 0 hands them to
// the merge in new_kv (key, then value).
#include <cmath>
#include <limits>
#include <vector>

#include "../task_context.h"

namespace megalith::cpu {

namespace {

// Normalizes (when gamma is present) and rotates one head of `head_dim` floats in place,
// rotate-half layout, as transformers does.
void norm_rope(float* v, int64_t head_dim, const RefView& gamma, double eps, const RefView& inv_freq,
               int32_t pos) {
  if (gamma.present()) {
    double sum_sq = 0;
    for (int64_t i = 0; i < head_dim; ++i) sum_sq += double(v[i]) * double(v[i]);
    const float inv_rms = float(1.0 / std::sqrt(sum_sq / double(head_dim) + eps));
    for (int64_t i = 0; i < head_dim; ++i) v[i] = gamma.get(0, i) * (v[i] * inv_rms);
  }
  const int64_t half = head_dim / 2;
  for (int64_t i = 0; i < half; ++i) {
    const float angle = float(pos) * inv_freq.get(0, i);
    const float c = float(std::cos(double(angle))), s = float(std::sin(double(angle)));
    const float x1 = v[i], x2 = v[i + half];
    v[i] = x1 * c - x2 * s;
    v[i + half] = x2 * c + x1 * s;
  }
}

// `x` as a cache of `type` stores it.
float rounded(abi::RefType type, float x) {
  switch (type) {
    case abi::RefType::kBF16: return bf16_to_float(float_to_bf16(x));
    case abi::RefType::kF16: return f16_to_float(float_to_f16(x));
    case abi::RefType::kF32:
    case abi::RefType::kI32: break;
  }
  return x;
}

}  // namespace

void run_attention_partial(const TaskContext& ctx, const abi::TaskDesc& t) {
  const RefView q(ctx, t.refs[0]), k(ctx, t.refs[1]), v(ctx, t.refs[2]);
  const RefView q_norm(ctx, t.refs[3]), k_norm(ctx, t.refs[4]), positions(ctx, t.refs[5]);
  const RefView inv_freq(ctx, t.refs[6]), k_cache(ctx, t.refs[7]), v_cache(ctx, t.refs[8]);
  const RefView partial(ctx, t.refs[9]), lse(ctx, t.refs[10]), new_kv(ctx, t.refs[11]);
  const abi::AttentionParams& p = t.params.attention;
  const int64_t hd = p.head_dim, group = p.group;
  const bool split = lse.present();
  const int32_t pos = positions.get_int(0, 0);
  if (pos < 0 || pos >= k_cache.rows()) {
    // Not a position of the cache: the graph let this task run before the step's embedding
    // (a broken graph, as the stress tests make). Its outputs are NaN and the caches untouched.
    fill_nan(partial);
    fill_nan(lse);
    fill_nan(new_kv);
    return;
  }

  std::vector<float> qs(static_cast<size_t>(group * hd)), key(static_cast<size_t>(hd)),
      value(static_cast<size_t>(hd));
  for (int64_t g = 0; g < group; ++g) {
    for (int64_t i = 0; i < hd; ++i) qs[size_t(g * hd + i)] = q.get(0, g * hd + i);
    norm_rope(&qs[size_t(g * hd)], hd, q_norm, p.eps, inv_freq, pos);
  }
  for (int64_t i = 0; i < hd; ++i) key[size_t(i)] = k.get(0, i);
  norm_rope(key.data(), hd, k_norm, p.eps, inv_freq, pos);
  for (int64_t i = 0; i < hd; ++i) value[size_t(i)] = v.get(0, i);
  for (int64_t i = 0; i < hd; ++i) {
    if (!split) {
      k_cache.set(pos, i, key[size_t(i)]);
      v_cache.set(pos, i, value[size_t(i)]);
    } else if (new_kv.present()) {
      new_kv.set(0, i, key[size_t(i)]);
      new_kv.set(0, hd + i, value[size_t(i)]);
    }
  }
  // Cache row `pos` as the cache holds it, whether or not this task wrote it.
  const auto key_at = [&](int64_t s, int64_t i) {
    return s == pos ? rounded(k_cache.type(), key[size_t(i)]) : k_cache.get(s, i);
  };
  const auto value_at = [&](int64_t s, int64_t i) {
    return s == pos ? rounded(v_cache.type(), value[size_t(i)]) : v_cache.get(s, i);
  };

  const auto out = [&](int64_t g, int64_t i, float x) {
    if (split) {
      partial.set(g, i, x);
    } else {
      partial.set(0, g * hd + i, x);
    }
  };
  const int64_t visible = int64_t(pos) + 1;
  const int64_t chunk = (visible + p.num_splits - 1) / p.num_splits;
  const int64_t begin = std::min(visible, p.split * chunk);
  const int64_t end = std::min(visible, begin + chunk);
  for (int64_t g = 0; g < group; ++g) {
    if (begin == end) {
      for (int64_t i = 0; i < hd; ++i) out(g, i, 0.0f);
      if (split) lse.set(g, 0, -std::numeric_limits<float>::infinity());
      continue;
    }
    std::vector<double> scores(static_cast<size_t>(end - begin));
    double max_score = -std::numeric_limits<double>::infinity();
    for (int64_t s = begin; s < end; ++s) {
      double dot = 0;
      for (int64_t i = 0; i < hd; ++i) dot += double(qs[size_t(g * hd + i)]) * double(key_at(s, i));
      scores[size_t(s - begin)] = dot * p.scale;
      max_score = std::max(max_score, scores[size_t(s - begin)]);
    }
    double total = 0;
    for (double& sc : scores) total += (sc = std::exp(sc - max_score));
    for (int64_t i = 0; i < hd; ++i) {
      double acc = 0;
      for (int64_t s = begin; s < end; ++s) acc += scores[size_t(s - begin)] * double(value_at(s, i));
      out(g, i, float(acc / total));
    }
    if (split) lse.set(g, 0, float(max_score + std::log(total)));
  }
}

}  // namespace megalith::cpu
