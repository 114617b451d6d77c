#include "megalith/model/reference_model.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace megalith {

namespace {

// y[t, o] = sum_i x[t, i] * w[o, i] (+ bias[o]) for t < n; w is [out, in] as transformers stores it.
void linear(const float* x, int64_t n, const TensorView& w, const TensorView* bias, float* y) {
  const int64_t out = w.shape[0], in = w.shape[1];
  const std::vector<float> b = bias ? bias->to_float() : std::vector<float>(size_t(out), 0.0f);
  // Threads only pay for themselves on large matrices; tiny test models stay single-threaded.
  const bool parallel = out * in * n >= (int64_t(1) << 20);
#pragma omp parallel if (parallel)
  {
    std::vector<float> row(static_cast<size_t>(in));
#pragma omp for schedule(static)
    for (int64_t o = 0; o < out; ++o) {
      w.row_to_float(o, row.data());
      for (int64_t t = 0; t < n; ++t) {
        const float* xt = x + t * in;
        double acc = 0.0;
        for (int64_t i = 0; i < in; ++i) acc += double(xt[i]) * double(row[size_t(i)]);
        y[t * out + o] = float(acc) + b[size_t(o)];
      }
    }
  }
}

// RMS norm of each of the `rows` rows of `dim` elements, in place, as transformers computes it.
void rms_norm(float* x, int64_t rows, int64_t dim, const std::vector<float>& weight, double eps) {
  for (int64_t r = 0; r < rows; ++r) {
    float* v = x + r * dim;
    double sum_sq = 0.0;
    for (int64_t i = 0; i < dim; ++i) sum_sq += double(v[i]) * double(v[i]);
    const float inv_rms = float(1.0 / std::sqrt(sum_sq / double(dim) + eps));
    for (int64_t i = 0; i < dim; ++i) v[i] = weight[size_t(i)] * (v[i] * inv_rms);
  }
}

float silu(float v) { return v / (1.0f + std::exp(-v)); }

}  // namespace

std::vector<float> rope_inverse_frequencies(const ModelConfig& cfg) {
  const int64_t dim = cfg.head_dim;
  const RopeConfig& rope = cfg.rope;
  std::vector<float> inv_freq(static_cast<size_t>(dim / 2));
  for (int64_t i = 0; i < dim / 2; ++i) {
    inv_freq[size_t(i)] = 1.0f / std::pow(float(rope.theta), float(2 * i) / float(dim));
  }
  if (rope.type == RopeType::kLinear) {
    for (float& f : inv_freq) f /= float(rope.factor);
  } else if (rope.type == RopeType::kLlama3) {
    // Long wavelengths are slowed by `factor`, short ones kept, the band between blended.
    const double old_len = double(rope.original_max_position_embeddings);
    const double low_wavelen = old_len / rope.low_freq_factor;
    const double high_wavelen = old_len / rope.high_freq_factor;
    for (float& f : inv_freq) {
      const float wavelen = float(2 * std::numbers::pi) / f;
      if (wavelen > low_wavelen) {
        f = f / float(rope.factor);
      } else if (wavelen >= high_wavelen) {
        const float smooth = float((old_len / wavelen - rope.low_freq_factor) /
                                   (rope.high_freq_factor - rope.low_freq_factor));
        f = (1 - smooth) * f / float(rope.factor) + smooth * f;
      }
    }
  }
  return inv_freq;
}

ReferenceModel::ReferenceModel(const Checkpoint& checkpoint)
    : ckpt_(checkpoint),
      cfg_(checkpoint.config()),
      inv_freq_(rope_inverse_frequencies(cfg_)),
      cache_(size_t(cfg_.num_layers)) {}

// Rotates each head's first and second halves as transformers' rotate_half does, at positions
// position_ .. position_+n-1.
void ReferenceModel::apply_rope(float* rows, int64_t n, int64_t heads) const {
  const int64_t hd = cfg_.head_dim, half = hd / 2;
  for (int64_t t = 0; t < n; ++t) {
    const float pos = float(position_ + t);
    for (int64_t i = 0; i < half; ++i) {
      const float angle = pos * inv_freq_[size_t(i)];
      const float c = float(std::cos(double(angle))), s = float(std::sin(double(angle)));
      for (int64_t h = 0; h < heads; ++h) {
        float* v = rows + t * heads * hd + h * hd;
        const float x1 = v[i], x2 = v[i + half];
        v[i] = x1 * c - x2 * s;
        v[i + half] = x2 * c + x1 * s;
      }
    }
  }
}

void ReferenceModel::attention_block(int64_t layer, int64_t n, std::vector<float>& x) {
  const int64_t h = cfg_.hidden_size, hd = cfg_.head_dim;
  const int64_t qs = cfg_.q_size(), kvs = cfg_.kv_size();
  auto w = [&](std::string_view suffix) { return ckpt_.weight(layer_weight_name(layer, suffix)); };
  auto bias = [&](std::string_view suffix, bool present) {
    return present ? std::optional(w(suffix)) : std::nullopt;
  };

  std::vector<float> xn = x;
  rms_norm(xn.data(), n, h, w("input_layernorm.weight").to_float(), cfg_.rms_norm_eps);

  std::vector<float> q(static_cast<size_t>(n * qs)), k(size_t(n * kvs)), v(size_t(n * kvs));
  const bool qkv_bias = cfg_.attention_bias;
  auto qb = bias("self_attn.q_proj.bias", qkv_bias), kb = bias("self_attn.k_proj.bias", qkv_bias),
       vb = bias("self_attn.v_proj.bias", qkv_bias);
  linear(xn.data(), n, w("self_attn.q_proj.weight"), qb ? &*qb : nullptr, q.data());
  linear(xn.data(), n, w("self_attn.k_proj.weight"), kb ? &*kb : nullptr, k.data());
  linear(xn.data(), n, w("self_attn.v_proj.weight"), vb ? &*vb : nullptr, v.data());
  if (cfg_.qk_norm) {
    rms_norm(q.data(), n * cfg_.num_heads, hd, w("self_attn.q_norm.weight").to_float(),
             cfg_.rms_norm_eps);
    rms_norm(k.data(), n * cfg_.num_kv_heads, hd, w("self_attn.k_norm.weight").to_float(),
             cfg_.rms_norm_eps);
  }
  apply_rope(q.data(), n, cfg_.num_heads);
  apply_rope(k.data(), n, cfg_.num_kv_heads);

  LayerCache& cache = cache_[size_t(layer)];
  cache.keys.resize(size_t(position_ * kvs));
  cache.values.resize(size_t(position_ * kvs));
  cache.keys.insert(cache.keys.end(), k.begin(), k.end());
  cache.values.insert(cache.values.end(), v.begin(), v.end());

  // Causal attention: query t sees cached positions 0 .. position_+t. Grouped-query heads
  // share the key/value head head / (heads / kv_heads).
  const int64_t group = cfg_.num_heads / cfg_.num_kv_heads;
  const double scale = 1.0 / std::sqrt(double(hd));
  std::vector<float> attn(static_cast<size_t>(n * qs));
  for (int64_t t = 0; t < n; ++t) {
    const int64_t visible = position_ + t + 1;
    for (int64_t head = 0; head < cfg_.num_heads; ++head) {
      const float* qv = q.data() + t * qs + head * hd;
      const int64_t kv_offset = (head / group) * hd;
      std::vector<double> scores(static_cast<size_t>(visible));
      for (int64_t s = 0; s < visible; ++s) {
        const float* kv = cache.keys.data() + s * kvs + kv_offset;
        double dot = 0.0;
        for (int64_t i = 0; i < hd; ++i) dot += double(qv[i]) * double(kv[i]);
        scores[size_t(s)] = dot * scale;
      }
      const double max_score = *std::max_element(scores.begin(), scores.end());
      double total = 0.0;
      for (double& sc : scores) total += (sc = std::exp(sc - max_score));
      float* out = attn.data() + t * qs + head * hd;
      for (int64_t i = 0; i < hd; ++i) {
        double acc = 0.0;
        for (int64_t s = 0; s < visible; ++s) {
          acc += scores[size_t(s)] * double(cache.values[size_t(s * kvs + kv_offset + i)]);
        }
        out[i] = float(acc / total);
      }
    }
  }

  std::vector<float> o(static_cast<size_t>(n * h));
  auto ob = bias("self_attn.o_proj.bias", cfg_.attention_out_bias);
  linear(attn.data(), n, w("self_attn.o_proj.weight"), ob ? &*ob : nullptr, o.data());
  for (size_t i = 0; i < x.size(); ++i) x[i] += o[i];
}

void ReferenceModel::mlp_block(int64_t layer, int64_t n, std::vector<float>& x) {
  const int64_t h = cfg_.hidden_size, ff = cfg_.intermediate_size;
  auto w = [&](std::string_view suffix) { return ckpt_.weight(layer_weight_name(layer, suffix)); };
  auto bias = [&](std::string_view suffix) {
    return cfg_.mlp_bias ? std::optional(w(suffix)) : std::nullopt;
  };

  std::vector<float> xn = x;
  rms_norm(xn.data(), n, h, w("post_attention_layernorm.weight").to_float(), cfg_.rms_norm_eps);
  std::vector<float> gate(static_cast<size_t>(n * ff)), up(size_t(n * ff)), down(size_t(n * h));
  auto gb = bias("mlp.gate_proj.bias"), ub = bias("mlp.up_proj.bias"),
       db = bias("mlp.down_proj.bias");
  linear(xn.data(), n, w("mlp.gate_proj.weight"), gb ? &*gb : nullptr, gate.data());
  linear(xn.data(), n, w("mlp.up_proj.weight"), ub ? &*ub : nullptr, up.data());
  for (size_t i = 0; i < gate.size(); ++i) gate[i] = silu(gate[i]) * up[i];
  linear(gate.data(), n, w("mlp.down_proj.weight"), db ? &*db : nullptr, down.data());
  for (size_t i = 0; i < x.size(); ++i) x[i] += down[i];
}

StatusOr<std::vector<float>> ReferenceModel::forward(std::span<const int32_t> tokens) {
  const int64_t n = int64_t(tokens.size()), h = cfg_.hidden_size;
  if (n == 0) return invalid_argument("forward needs at least one token");
  const TensorView embed = ckpt_.weight("model.embed_tokens.weight");
  std::vector<float> x(static_cast<size_t>(n * h));
  for (int64_t t = 0; t < n; ++t) {
    const int32_t id = tokens[size_t(t)];
    if (id < 0 || id >= cfg_.vocab_size) {
      return invalid_argument("token id {} is outside the vocabulary [0, {})", id, cfg_.vocab_size);
    }
    embed.row_to_float(id, x.data() + t * h);
  }
  for (int64_t layer = 0; layer < cfg_.num_layers; ++layer) {
    attention_block(layer, n, x);
    mlp_block(layer, n, x);
  }
  rms_norm(x.data(), n, h, ckpt_.weight("model.norm.weight").to_float(), cfg_.rms_norm_eps);
  std::vector<float> logits(static_cast<size_t>(n * cfg_.vocab_size));
  linear(x.data(), n, ckpt_.lm_head(), nullptr, logits.data());
  position_ += n;
  return logits;
}

}  // namespace megalith
