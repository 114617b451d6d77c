#include "megalith/model/model_graph.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "megalith/graph/verify.h"

namespace megalith {
namespace {

ModelConfig tiny_config(Architecture arch) {
  ModelConfig c;
  c.arch = arch;
  c.vocab_size = 96;
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.num_layers = 3;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 16;  // deliberately not hidden / heads
  c.max_position_embeddings = 128;
  c.attention_bias = arch == Architecture::kQwen2;
  c.qk_norm = arch == Architecture::kQwen3;
  return c;
}

// What each architecture has, spelled out independently of the code under test.
struct Features {
  bool qkv_bias = false, o_bias = false, mlp_bias = false, qk_norm = false;
};

// The Hugging Face names in the order the decode step first reads them.
std::vector<std::string> expected_names(const ModelConfig& c, Features f) {
  std::vector<std::string> names = {"model.embed_tokens.weight"};
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    auto linear = [&](const std::string& module, bool bias) {
      names.push_back(p + module + ".weight");
      if (bias) names.push_back(p + module + ".bias");
    };
    names.push_back(p + "input_layernorm.weight");
    linear("self_attn.q_proj", f.qkv_bias);
    linear("self_attn.k_proj", f.qkv_bias);
    linear("self_attn.v_proj", f.qkv_bias);
    if (f.qk_norm) {
      names.push_back(p + "self_attn.q_norm.weight");
      names.push_back(p + "self_attn.k_norm.weight");
    }
    linear("self_attn.o_proj", f.o_bias);
    names.push_back(p + "post_attention_layernorm.weight");
    linear("mlp.gate_proj", f.mlp_bias);
    linear("mlp.up_proj", f.mlp_bias);
    linear("mlp.down_proj", f.mlp_bias);
  }
  names.push_back("model.norm.weight");
  if (!c.tie_word_embeddings) names.push_back("lm_head.weight");
  return names;
}

int64_t expected_parameters(const ModelConfig& c, Features f) {
  const int64_t h = c.hidden_size, q = c.num_heads * c.head_dim, kv = c.num_kv_heads * c.head_dim;
  const int64_t i = c.intermediate_size;
  const int64_t attn = h * q + 2 * h * kv + q * h + (f.qkv_bias ? q + 2 * kv : 0) +
                       (f.o_bias ? h : 0) + (f.qk_norm ? 2 * c.head_dim : 0);
  const int64_t mlp = 3 * h * i + (f.mlp_bias ? 2 * i + h : 0);
  const int64_t layer = h + attn + h + mlp;
  return c.vocab_size * h * (c.tie_word_embeddings ? 1 : 2) + c.num_layers * layer + h;
}

Graph build(const ModelConfig& cfg, int64_t tokens = 2, int64_t seq = 64) {
  StatusOr<Graph> g = build_decode_graph(cfg, tokens, seq);
  EXPECT_TRUE(g.ok()) << g.status().message();
  return std::move(g).value();
}

// Names, dtypes, counts and totals of the weights, plus the verifier.
void expect_weights(const ModelConfig& cfg, Features f) {
  Graph g = build(cfg);
  EXPECT_TRUE(verify(g).ok());
  std::vector<WeightSpec> specs = weight_specs(g);
  std::vector<std::string> names;
  int64_t params = 0;
  for (const WeightSpec& w : specs) {
    names.push_back(w.name);
    EXPECT_EQ(w.dtype, cfg.dtype) << w.name;
    params += shape_numel(w.shape);
  }
  EXPECT_EQ(names, expected_names(cfg, f));
  EXPECT_EQ(params, expected_parameters(cfg, f));
  GraphStats s = graph_stats(g);
  EXPECT_EQ(s.num_weights, int64_t(specs.size()));
  EXPECT_EQ(s.weight_elements, params);
  EXPECT_EQ(s.weight_bytes, params * int64_t(dtype_size(cfg.dtype)));
}

const Tensor& tensor_named(const Graph& g, std::string_view name) {
  const TensorId id = g.find(name);
  EXPECT_NE(id, kNoTensor) << name;
  return g.tensor(id == kNoTensor ? 0 : id);
}

TEST(ModelGraph, LlamaUntied) { expect_weights(tiny_config(Architecture::kLlama), {}); }

TEST(ModelGraph, LlamaTiedUsesTheEmbeddingsAsLmHead) {
  ModelConfig cfg = tiny_config(Architecture::kLlama);
  cfg.tie_word_embeddings = true;
  expect_weights(cfg, {});
  Graph g = build(cfg);
  EXPECT_EQ(g.find("lm_head.weight"), kNoTensor);
  const Op& lm_head = g.ops[g.ops.size() - 2];
  EXPECT_EQ(lm_head.name, "lm_head");
  EXPECT_EQ(lm_head.inputs[1], g.find("model.embed_tokens.weight"));
}

TEST(ModelGraph, LlamaBiases) {
  ModelConfig cfg = tiny_config(Architecture::kLlama);
  cfg.attention_bias = true;
  cfg.attention_out_bias = true;
  expect_weights(cfg, {.qkv_bias = true, .o_bias = true});
  cfg.attention_bias = cfg.attention_out_bias = false;
  cfg.mlp_bias = true;
  cfg.dtype = DType::kF32;
  expect_weights(cfg, {.mlp_bias = true});
}

TEST(ModelGraph, Qwen2HasQkvBiases) {
  ModelConfig cfg = tiny_config(Architecture::kQwen2);
  cfg.tie_word_embeddings = true;
  cfg.dtype = DType::kF16;
  expect_weights(cfg, {.qkv_bias = true});
  cfg.attention_bias = false;  // a Qwen2 has them whatever the flag says
  expect_weights(cfg, {.qkv_bias = true});
}

TEST(ModelGraph, Qwen3HasQkNorms) {
  ModelConfig cfg = tiny_config(Architecture::kQwen3);
  expect_weights(cfg, {.qk_norm = true});
  Graph g = build(cfg);
  const GraphStats s = graph_stats(g);
  EXPECT_EQ(s.op_count(OpKind::kHeadRmsNorm), 2 * cfg.num_layers);
  const Tensor& q_norm = tensor_named(g, "model.layers.2.self_attn.q_norm.weight");
  EXPECT_EQ(q_norm.shape, Shape{cfg.head_dim});
}

TEST(ModelGraph, Qwen3_0_6BRealShape) {
  ModelConfig cfg = tiny_config(Architecture::kQwen3);
  cfg.vocab_size = 151936;
  cfg.hidden_size = 1024;
  cfg.intermediate_size = 3072;
  cfg.num_layers = 28;
  cfg.num_heads = 16;
  cfg.num_kv_heads = 8;
  cfg.head_dim = 128;
  cfg.tie_word_embeddings = true;
  cfg.rope.theta = 1000000.0;
  const Features f{.qk_norm = true};
  EXPECT_EQ(expected_parameters(cfg, f), 596'049'920);
  StatusOr<Graph> g = build_decode_graph(cfg, 1, 4096);
  ASSERT_TRUE(g.ok()) << g.status().message();
  const GraphStats s = graph_stats(*g);
  EXPECT_EQ(s.weight_elements, 596'049'920);
  EXPECT_EQ(s.weight_bytes, 2 * 596'049'920LL);
  EXPECT_EQ(s.num_weights, 1 + 28 * 11 + 1);
  EXPECT_EQ(s.state_bytes, 28LL * 2 * 4096 * 8 * 128 * 2);
  EXPECT_EQ(weight_specs(*g).size(), size_t(s.num_weights));
}

TEST(ModelGraph, StructureAndInterface) {
  ModelConfig cfg = tiny_config(Architecture::kLlama);
  cfg.rms_norm_eps = 1e-5;
  cfg.rope.theta = 500000.0;
  const int64_t tokens = 3, seq = 40, layers = cfg.num_layers;
  Graph g = build(cfg, tokens, seq);

  const GraphStats s = graph_stats(g);
  EXPECT_EQ(s.op_count(OpKind::kEmbedding), 1);
  EXPECT_EQ(s.op_count(OpKind::kRmsNorm), 2 * layers + 1);
  EXPECT_EQ(s.op_count(OpKind::kLinear), 7 * layers + 1);
  EXPECT_EQ(s.op_count(OpKind::kHeadRmsNorm), 0);
  EXPECT_EQ(s.op_count(OpKind::kRope), 2 * layers);
  EXPECT_EQ(s.op_count(OpKind::kKvAppend), layers);
  EXPECT_EQ(s.op_count(OpKind::kAttention), layers);
  EXPECT_EQ(s.op_count(OpKind::kSiluMul), layers);
  EXPECT_EQ(s.op_count(OpKind::kAdd), 2 * layers);
  EXPECT_EQ(s.op_count(OpKind::kArgmax), 1);

  EXPECT_EQ(tensor_named(g, kTokenIdsInput).kind, TensorKind::kInput);
  EXPECT_EQ(tensor_named(g, kTokenIdsInput).type, ElemType::kI32);
  EXPECT_EQ(tensor_named(g, kPositionsInput).shape, Shape{tokens});
  const Tensor& logits = tensor_named(g, kLogitsOutput);
  EXPECT_EQ(logits.kind, TensorKind::kOutput);
  EXPECT_EQ(logits.shape, (Shape{tokens, cfg.vocab_size}));
  EXPECT_EQ(logits.type, ElemType::kBF16);
  const Tensor& next = tensor_named(g, kNextTokensOutput);
  EXPECT_EQ(next.kind, TensorKind::kOutput);
  EXPECT_EQ(next.type, ElemType::kI32);
  EXPECT_EQ(next.shape, Shape{tokens});
  EXPECT_EQ(g.tensors_of_kind(TensorKind::kOutput).size(), 2u);

  for (int64_t i = 0; i < layers; ++i) {
    const std::string l = "layers." + std::to_string(i) + ".";
    for (const char* cache : {"k_cache", "v_cache"}) {
      const Tensor& c = tensor_named(g, l + cache);
      EXPECT_EQ(c.kind, TensorKind::kState);
      EXPECT_EQ(c.shape, (Shape{seq, cfg.num_kv_heads * cfg.head_dim}));
      EXPECT_EQ(tensor_named(g, l + cache + ".updated").state_of, c.id);
    }
  }
  // Attention reads the caches after this step's append.
  for (const Op& op : g.ops) {
    if (op.kind == OpKind::kAttention) {
      EXPECT_NE(g.tensor(op.inputs[1]).state_of, kNoTensor) << op.name;
      const auto& a = std::get<AttentionAttrs>(op.attrs);
      EXPECT_EQ(a.num_heads, cfg.num_heads);
      EXPECT_EQ(a.head_dim, cfg.head_dim);
      EXPECT_DOUBLE_EQ(a.scale, 0.25);
    }
    if (op.kind == OpKind::kRope) {
      EXPECT_DOUBLE_EQ(std::get<RopeAttrs>(op.attrs).rope.theta, 500000.0) << op.name;
    }
    if (op.kind == OpKind::kRmsNorm) {
      EXPECT_DOUBLE_EQ(std::get<NormAttrs>(op.attrs).eps, 1e-5) << op.name;
    }
  }
  EXPECT_EQ(g.ops.front().name, "embed_tokens");
  EXPECT_EQ(g.ops[1].name, "layers.0.input_layernorm");
  EXPECT_EQ(g.ops[2].name, "layers.0.attn.q_proj");
  EXPECT_EQ(g.ops.back().name, "argmax");
}

TEST(ModelGraph, RejectsConfigsItCannotBuild) {
  auto error = [](ModelConfig cfg, int64_t tokens, int64_t seq) {
    StatusOr<Graph> g = build_decode_graph(cfg, tokens, seq);
    EXPECT_FALSE(g.ok());
    return g.ok() ? std::string() : g.status().message();
  };
  ModelConfig cfg = tiny_config(Architecture::kLlama);
  cfg.num_kv_heads = 3;
  EXPECT_NE(error(cfg, 1, 8).find("num_kv_heads (3) does not divide num_heads (4)"),
            std::string::npos);
  cfg = tiny_config(Architecture::kLlama);
  cfg.head_dim = 7;
  EXPECT_NE(error(cfg, 1, 8).find("head_dim (7) must be even"), std::string::npos);
  cfg = tiny_config(Architecture::kLlama);
  cfg.vocab_size = 0;
  EXPECT_NE(error(cfg, 1, 8).find("vocab_size (0) must be positive"), std::string::npos);
  EXPECT_NE(error(tiny_config(Architecture::kQwen3), 9, 8).find("max_tokens (9) exceeds"),
            std::string::npos);
  EXPECT_NE(error(tiny_config(Architecture::kQwen3), 0, 8).find("max_tokens (0)"),
            std::string::npos);
  cfg = tiny_config(Architecture::kQwen2);
  cfg.rms_norm_eps = 0;
  EXPECT_NE(error(cfg, 1, 8).find("'layers.0.input_layernorm' (rms_norm): eps must be positive"),
            std::string::npos);
}

TEST(ModelGraph, DumpHasOneLinePerOp) {
  Graph g = build(tiny_config(Architecture::kQwen3));
  const std::string dump = graph_to_string(g);
  size_t lines = 0;
  for (char c : dump) lines += c == '\n';
  EXPECT_EQ(lines, g.ops.size() + 5);  // inputs, states, outputs and two lines of stats
  EXPECT_NE(dump.find("layers.2.attn.k_norm"), std::string::npos);
  EXPECT_NE(dump.find("head_rms_norm"), std::string::npos);
}

}  // namespace
}  // namespace megalith
