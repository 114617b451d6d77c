#include "megalith/model/model_graph.h"

#include <fmt/format.h>

#include <set>

#include "megalith/graph/builder.h"

namespace megalith {
namespace {

Status check_config(const ModelConfig& cfg, int64_t max_tokens, int64_t max_seq_len) {
  const std::pair<const char*, int64_t> sizes[] = {{"vocab_size", cfg.vocab_size},
                                                   {"hidden_size", cfg.hidden_size},
                                                   {"intermediate_size", cfg.intermediate_size},
                                                   {"num_layers", cfg.num_layers},
                                                   {"num_heads", cfg.num_heads},
                                                   {"num_kv_heads", cfg.num_kv_heads},
                                                   {"head_dim", cfg.head_dim},
                                                   {"max_tokens", max_tokens},
                                                   {"max_seq_len", max_seq_len}};
  for (const auto& [field, value] : sizes) {
    if (value <= 0) return invalid_argument("decode graph: {} ({}) must be positive", field, value);
  }
  if (cfg.num_heads % cfg.num_kv_heads != 0) {
    return invalid_argument("decode graph: num_kv_heads ({}) does not divide num_heads ({})",
                            cfg.num_kv_heads, cfg.num_heads);
  }
  if (cfg.head_dim % 2 != 0) {
    return invalid_argument("decode graph: head_dim ({}) must be even for rotary embeddings",
                            cfg.head_dim);
  }
  if (max_tokens > max_seq_len) {
    return invalid_argument("decode graph: max_tokens ({}) exceeds max_seq_len ({})", max_tokens,
                            max_seq_len);
  }
  return {};
}

// Declares a layer's weights by their Hugging Face names, right where the model reads them, so
// tensor ids follow the order of first use.
class LayerWeights {
 public:
  LayerWeights(GraphBuilder& b, const ModelConfig& cfg, int64_t layer)
      : b_(b), dtype_(cfg.dtype), prefix_(layer_weight_name(layer, "")) {}

  TensorId get(const std::string& suffix, Shape shape) {
    return b_.weight(prefix_ + suffix, dtype_, std::move(shape));
  }

  // `module` is the Hugging Face module ("self_attn.q_proj"): its .weight and optional .bias.
  TensorId linear(std::string op, TensorId x, const std::string& module, int64_t out, int64_t in,
                  bool bias) {
    const TensorId weight = get(module + ".weight", {out, in});
    const TensorId b = bias ? get(module + ".bias", {out}) : kNoTensor;
    return b_.linear(std::move(op), x, weight, b);
  }

 private:
  GraphBuilder& b_;
  DType dtype_;
  std::string prefix_;
};

}  // namespace

StatusOr<Graph> build_decode_graph(const ModelConfig& cfg, int64_t max_tokens,
                                   int64_t max_seq_len) {
  MEGALITH_RETURN_IF_ERROR(check_config(cfg, max_tokens, max_seq_len));
  const int64_t hidden = cfg.hidden_size, inter = cfg.intermediate_size;
  const int64_t q_size = cfg.q_size(), kv_size = cfg.kv_size();
  // Qwen2 always has q/k/v biases and Qwen3 always q/k norms, whatever the flags say.
  const bool qkv_bias = cfg.attention_bias || cfg.arch == Architecture::kQwen2;
  const bool qk_norm = cfg.qk_norm || cfg.arch == Architecture::kQwen3;

  GraphBuilder b;
  const TensorId ids = b.input(std::string(kTokenIdsInput), ElemType::kI32, {max_tokens});
  const TensorId pos = b.input(std::string(kPositionsInput), ElemType::kI32, {max_tokens});
  const TensorId embed = b.weight("model.embed_tokens.weight", cfg.dtype, {cfg.vocab_size, hidden});
  TensorId x = b.embedding("embed_tokens", ids, embed);

  for (int64_t i = 0; i < cfg.num_layers; ++i) {
    const std::string l = fmt::format("layers.{}.", i);
    LayerWeights w(b, cfg, i);

    TensorId h = b.rms_norm(l + "input_layernorm", x, w.get("input_layernorm.weight", {hidden}),
                            cfg.rms_norm_eps);
    TensorId q = w.linear(l + "attn.q_proj", h, "self_attn.q_proj", q_size, hidden, qkv_bias);
    TensorId k = w.linear(l + "attn.k_proj", h, "self_attn.k_proj", kv_size, hidden, qkv_bias);
    TensorId v = w.linear(l + "attn.v_proj", h, "self_attn.v_proj", kv_size, hidden, qkv_bias);
    if (qk_norm) {
      q = b.head_rms_norm(l + "attn.q_norm", q, w.get("self_attn.q_norm.weight", {cfg.head_dim}),
                          cfg.rms_norm_eps);
      k = b.head_rms_norm(l + "attn.k_norm", k, w.get("self_attn.k_norm.weight", {cfg.head_dim}),
                          cfg.rms_norm_eps);
    }
    q = b.rope(l + "attn.q_rope", q, pos, cfg.rope, cfg.head_dim);
    k = b.rope(l + "attn.k_rope", k, pos, cfg.rope, cfg.head_dim);
    const TensorId k_cache = b.state(l + "k_cache", cfg.dtype, {max_seq_len, kv_size});
    const TensorId v_cache = b.state(l + "v_cache", cfg.dtype, {max_seq_len, kv_size});
    const auto [k_all, v_all] = b.kv_append(l + "attn.kv_append", k, v, pos, k_cache, v_cache);
    TensorId a = b.attention(l + "attn.attention", q, k_all, v_all, pos, cfg.num_heads,
                             cfg.num_kv_heads, cfg.head_dim);
    a = w.linear(l + "attn.o_proj", a, "self_attn.o_proj", hidden, q_size, cfg.attention_out_bias);
    x = b.add(l + "attn_residual", x, a);

    h = b.rms_norm(l + "post_attention_layernorm", x,
                   w.get("post_attention_layernorm.weight", {hidden}), cfg.rms_norm_eps);
    const TensorId gate =
        w.linear(l + "mlp.gate_proj", h, "mlp.gate_proj", inter, hidden, cfg.mlp_bias);
    const TensorId up = w.linear(l + "mlp.up_proj", h, "mlp.up_proj", inter, hidden, cfg.mlp_bias);
    TensorId m = b.silu_mul(l + "mlp.silu_mul", gate, up);
    m = w.linear(l + "mlp.down_proj", m, "mlp.down_proj", hidden, inter, cfg.mlp_bias);
    x = b.add(l + "mlp_residual", x, m);
  }

  x = b.rms_norm("norm", x, b.weight("model.norm.weight", cfg.dtype, {hidden}), cfg.rms_norm_eps);
  const TensorId lm_head = cfg.tie_word_embeddings
                               ? embed
                               : b.weight("lm_head.weight", cfg.dtype, {cfg.vocab_size, hidden});
  const TensorId logits = b.output(b.linear("lm_head", x, lm_head), std::string(kLogitsOutput));
  b.output(b.argmax("argmax", logits), std::string(kNextTokensOutput));
  StatusOr<Graph> g = std::move(b).finish();
  if (!g.ok()) return g.status().with_context("decode graph");
  return g;
}

std::vector<WeightSpec> weight_specs(const Graph& g) {
  std::vector<WeightSpec> specs;
  std::set<TensorId> seen;
  for (const Op& op : g.ops) {
    for (TensorId id : op.inputs) {
      const Tensor& t = g.tensor(id);
      if (t.kind != TensorKind::kWeight || !seen.insert(id).second) continue;
      specs.push_back({t.name, *elem_dtype(t.type), t.shape});
    }
  }
  return specs;
}

std::vector<WeightSpec> model_weight_specs(const ModelConfig& cfg) {
  StatusOr<Graph> g = build_decode_graph(cfg, 1, 1);
  MEGALITH_CHECK(g.ok(), "decode graph of a parsed config: {}", g.status().message());
  return weight_specs(*g);
}

std::string layer_weight_name(int64_t layer, std::string_view suffix) {
  return fmt::format("model.layers.{}.{}", layer, suffix);
}

}  // namespace megalith
