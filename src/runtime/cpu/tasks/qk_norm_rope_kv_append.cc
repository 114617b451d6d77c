// One KV head: per-head RMS norm (when the model has one) and rotary on its query heads (in
// place) and key; key and value written to the caches at the token's position.
#include <cmath>
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

}  // namespace

void run_qk_norm_rope_kv_append(const TaskContext& ctx, const abi::TaskDesc& t) {
  const RefView q(ctx, t.refs[0]), k(ctx, t.refs[1]), v(ctx, t.refs[2]);
  const RefView q_norm(ctx, t.refs[3]), k_norm(ctx, t.refs[4]), positions(ctx, t.refs[5]);
  const RefView inv_freq(ctx, t.refs[6]), k_cache(ctx, t.refs[7]), v_cache(ctx, t.refs[8]);
  const int64_t hd = t.params.rope.head_dim, group = t.params.rope.group;
  const double eps = t.params.rope.eps;
  std::vector<float> head(static_cast<size_t>(hd));
  for (int64_t r = 0; r < q.rows(); ++r) {
    const int32_t pos = positions.get_int(0, r);
    for (int64_t g = 0; g < group; ++g) {
      for (int64_t i = 0; i < hd; ++i) head[size_t(i)] = q.get(r, g * hd + i);
      norm_rope(head.data(), hd, q_norm, eps, inv_freq, pos);
      for (int64_t i = 0; i < hd; ++i) q.set(r, g * hd + i, head[size_t(i)]);
    }
    for (int64_t i = 0; i < hd; ++i) head[size_t(i)] = k.get(r, i);
    norm_rope(head.data(), hd, k_norm, eps, inv_freq, pos);
    for (int64_t i = 0; i < hd; ++i) {
      k_cache.set(pos, i, head[size_t(i)]);
      v_cache.set(pos, i, v.get(r, i));
    }
  }
}

}  // namespace megalith::cpu
