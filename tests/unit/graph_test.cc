#include "megalith/graph/graph.h"

#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "megalith/graph/builder.h"
#include "megalith/graph/verify.h"

namespace megalith {
namespace {

constexpr int64_t kTokens = 3, kVocab = 10, kHidden = 8, kHeads = 4, kKvHeads = 2, kHeadDim = 4;
constexpr int64_t kSeq = 16, kInter = 12;

// Everything a tiny attention + MLP block needs, already declared on a builder.
struct Tiny {
  GraphBuilder b;
  TensorId ids = b.input("token_ids", ElemType::kI32, {kTokens});
  TensorId pos = b.input("positions", ElemType::kI32, {kTokens});
  TensorId table = b.weight("embed", DType::kBF16, {kVocab, kHidden});
  TensorId x = b.embedding("embed_tokens", ids, table);
};

// A complete, valid graph: one attention block, one MLP, logits and argmax.
Graph tiny_graph() {
  Tiny t;
  GraphBuilder& b = t.b;
  TensorId h = b.rms_norm("ln", t.x, b.weight("ln.w", DType::kBF16, {kHidden}), 1e-6);
  TensorId q = b.linear("q_proj", h, b.weight("q.w", DType::kBF16, {kHeads * kHeadDim, kHidden}),
                        b.weight("q.b", DType::kBF16, {kHeads * kHeadDim}));
  TensorId k = b.linear("k_proj", h, b.weight("k.w", DType::kBF16, {kKvHeads * kHeadDim, kHidden}));
  TensorId v = b.linear("v_proj", h, b.weight("v.w", DType::kBF16, {kKvHeads * kHeadDim, kHidden}));
  q = b.head_rms_norm("q_norm", q, b.weight("qn.w", DType::kBF16, {kHeadDim}), 1e-6);
  q = b.rope("q_rope", q, t.pos, RopeConfig{}, kHeadDim);
  k = b.rope("k_rope", k, t.pos, RopeConfig{}, kHeadDim);
  TensorId kc = b.state("k_cache", DType::kBF16, {kSeq, kKvHeads * kHeadDim});
  TensorId vc = b.state("v_cache", DType::kBF16, {kSeq, kKvHeads * kHeadDim});
  auto [k_all, v_all] = b.kv_append("kv_append", k, v, t.pos, kc, vc);
  TensorId a = b.attention("attention", q, k_all, v_all, t.pos, kHeads, kKvHeads, kHeadDim);
  a = b.linear("o_proj", a, b.weight("o.w", DType::kBF16, {kHidden, kHeads * kHeadDim}));
  TensorId x = b.add("residual", t.x, a);
  TensorId gate = b.linear("gate", x, b.weight("g.w", DType::kBF16, {kInter, kHidden}));
  TensorId up = b.linear("up", x, b.weight("u.w", DType::kBF16, {kInter, kHidden}));
  TensorId m = b.silu_mul("silu_mul", gate, up);
  m = b.linear("down", m, b.weight("d.w", DType::kBF16, {kHidden, kInter}));
  x = b.add("mlp_residual", x, m);
  TensorId logits = b.output(b.linear("lm_head", x, t.table), "logits");
  b.output(b.argmax("argmax", logits), "next_token_ids");
  StatusOr<Graph> g = std::move(b).finish();
  EXPECT_TRUE(g.ok()) << g.status().message();
  return std::move(g).value();
}

const Op& op_named(const Graph& g, const std::string& name) {
  for (const Op& op : g.ops) {
    if (op.name == name) return op;
  }
  ADD_FAILURE() << "no op " << name;
  return g.ops.front();
}

TEST(GraphBuilder, InfersShapesAndTypes) {
  Graph g = tiny_graph();
  auto type_of = [&](const std::string& name) {
    const Tensor& t = g.tensor(g.find(name));
    return tensor_type_to_string(t);
  };
  EXPECT_EQ(type_of("embed_tokens"), "[3, 8] bf16");
  EXPECT_EQ(type_of("q_proj"), "[3, 16] bf16");
  EXPECT_EQ(type_of("k_proj"), "[3, 8] bf16");
  EXPECT_EQ(type_of("q_rope"), "[3, 16] bf16");
  EXPECT_EQ(type_of("attention"), "[3, 16] bf16");
  EXPECT_EQ(type_of("silu_mul"), "[3, 12] bf16");
  EXPECT_EQ(type_of("logits"), "[3, 10] bf16");
  EXPECT_EQ(type_of("next_token_ids"), "[3] i32");

  const Tensor& k_new = g.tensor(g.find("k_cache.updated"));
  EXPECT_EQ(k_new.kind, TensorKind::kState);
  EXPECT_EQ(k_new.state_of, g.find("k_cache"));
  EXPECT_EQ(k_new.shape, (Shape{kSeq, kKvHeads * kHeadDim}));
  EXPECT_EQ(g.tensor(g.find("logits")).kind, TensorKind::kOutput);

  const Op& attn = op_named(g, "attention");
  EXPECT_EQ(attn.inputs[1], g.find("k_cache.updated"));
  const auto& attrs = std::get<AttentionAttrs>(attn.attrs);
  EXPECT_EQ(attrs.num_kv_heads, kKvHeads);
  EXPECT_DOUBLE_EQ(attrs.scale, 0.5);
  EXPECT_EQ(std::get<HeadNormAttrs>(op_named(g, "q_norm").attrs).head_dim, kHeadDim);
  EXPECT_EQ(op_named(g, "q_proj").inputs.size(), 3u);  // bias present
  EXPECT_EQ(op_named(g, "k_proj").inputs.size(), 2u);  // bias absent
}

// Runs `misuse` on a builder holding Tiny's tensors and expects finish() to fail naming `op`
// with a message containing `detail`.
void expect_builder_error(const std::function<void(Tiny&)>& misuse, const std::string& op,
                          const std::string& detail) {
  Tiny t;
  misuse(t);
  ASSERT_FALSE(t.b.status().ok());
  StatusOr<Graph> g = std::move(t.b).finish();
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(g.status().message().find("'" + op + "'"), std::string::npos) << g.status().message();
  EXPECT_NE(g.status().message().find(detail), std::string::npos) << g.status().message();
}

TEST(GraphBuilder, ReportsShapeErrorsWithTheOpName) {
  expect_builder_error(
      [](Tiny& t) {
        t.b.linear("layers.0.attn.q_proj", t.x, t.b.weight("w", DType::kBF16, {16, 5}));
      },
      "layers.0.attn.q_proj", "expects 5 input features");
  expect_builder_error(
      [](Tiny& t) {
        t.b.linear("proj", t.x, t.b.weight("w", DType::kBF16, {16, kHidden}),
                   t.b.weight("b", DType::kBF16, {15}));
      },
      "proj", "does not match the 16 output features");
  expect_builder_error(
      [](Tiny& t) {
        t.b.rms_norm("input_layernorm", t.x, t.b.weight("w", DType::kBF16, {kHidden + 1}), 1e-6);
      },
      "input_layernorm", "does not match the 8 features");
  expect_builder_error(
      [](Tiny& t) {
        TensorId q = t.b.input("q", ElemType::kBF16, {kTokens, 12});
        TensorId kc = t.b.state("kc", DType::kBF16, {kSeq, 8});
        TensorId vc = t.b.state("vc", DType::kBF16, {kSeq, 8});
        t.b.attention("attn", q, kc, vc, t.pos, /*num_heads=*/3, /*num_kv_heads=*/2, 4);
      },
      "attn", "2 kv heads do not divide 3 query heads");
  expect_builder_error(
      [](Tiny& t) {
        TensorId q = t.b.input("q", ElemType::kBF16, {kTokens, 16});
        TensorId kc = t.b.state("kc", DType::kBF16, {kSeq, 4});
        TensorId vc = t.b.state("vc", DType::kBF16, {kSeq, 4});
        t.b.attention("attn", q, kc, vc, t.pos, 4, 2, 4);
      },
      "attn", "must have 2 kv heads x 4 = 8 features");
  expect_builder_error([](Tiny& t) { t.b.rope("rope", t.x, t.pos, RopeConfig{}, /*head_dim=*/3); },
                       "rope", "head_dim 3 must be positive and even");
  expect_builder_error(
      [](Tiny& t) { t.b.head_rms_norm("q_norm", t.x, t.b.weight("w", DType::kBF16, {3}), 1e-6); },
      "q_norm", "not a multiple of head_dim 3");
  expect_builder_error(
      [](Tiny& t) { t.b.embedding("embed2", t.b.input("f", ElemType::kF32, {kTokens}), t.table); },
      "embed2", "ids 'f' [3] f32 must be i32");
  expect_builder_error(
      [](Tiny& t) {
        t.b.linear("proj", t.x, t.b.input("w", ElemType::kBF16, {4, kHidden}));
      },
      "proj", "must be a weight, not input");
  expect_builder_error(
      [](Tiny& t) {
        TensorId y = t.b.input("y", ElemType::kBF16, {kTokens, kHidden + 1});
        t.b.add("residual", t.x, y);
      },
      "residual", "must have the same shape and type");
  expect_builder_error(
      [](Tiny& t) {
        TensorId kv = t.b.input("kv", ElemType::kBF16, {kTokens, 8});
        TensorId not_state = t.b.input("kc", ElemType::kBF16, {kSeq, 8});
        TensorId vc = t.b.state("vc", DType::kBF16, {kSeq, 8});
        t.b.kv_append("kv_append", kv, kv, t.pos, not_state, vc);
      },
      "kv_append", "must be a start-of-step state tensor");
  expect_builder_error([](Tiny& t) { t.b.add("sum", t.x, TensorId(999)); }, "sum",
                       "input 1 is not a tensor of this graph");
}

TEST(GraphBuilder, KeepsTheFirstErrorAndIgnoresLaterCalls) {
  Tiny t;
  TensorId bad = t.b.linear("first", t.x, t.b.weight("w", DType::kBF16, {4, 5}));
  EXPECT_EQ(bad, kNoTensor);
  // Later calls see the failed id but must neither crash nor replace the first error.
  EXPECT_EQ(t.b.add("second", bad, t.x), kNoTensor);
  EXPECT_EQ(t.b.weight("w2", DType::kBF16, {2}), kNoTensor);
  EXPECT_EQ(t.b.output(bad, "out"), kNoTensor);
  StatusOr<Graph> g = std::move(t.b).finish();
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("'first' (linear)"), std::string::npos);
}

TEST(GraphBuilder, RejectsDuplicateNamesAndBadLeaves) {
  {
    Tiny t;
    t.b.weight("embed", DType::kF32, {2});
    EXPECT_NE(t.b.status().message().find("tensor name 'embed' is already taken"),
              std::string::npos);
  }
  {
    Tiny t;
    t.b.add("embed_tokens", t.x, t.x);
    EXPECT_NE(t.b.status().message().find("op name 'embed_tokens' is already taken"),
              std::string::npos);
  }
  {
    GraphBuilder b;
    b.weight("w", DType::kBF16, {4, 0});
    EXPECT_NE(b.status().message().find("dims must be positive"), std::string::npos);
  }
  {
    Tiny t;
    t.b.output(t.table, "logits");
    EXPECT_NE(t.b.status().message().find("is a weight tensor, not an activation"),
              std::string::npos);
  }
}

TEST(GraphBuilder, FinishVerifies) {
  Tiny t;
  t.b.weight("unused", DType::kBF16, {4});
  t.b.output(t.x, "x");
  StatusOr<Graph> g = std::move(t.b).finish();
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("weight 'unused' is read by no op"), std::string::npos);
}

TEST(GraphVerify, AcceptsABuiltGraph) {
  Status s = verify(tiny_graph());
  EXPECT_TRUE(s.ok()) << s.message();
}

// Breaks a copy of the tiny graph and expects verify() to report `detail`.
void expect_verify_error(const std::function<void(Graph&)>& breakage, const std::string& detail) {
  Graph g = tiny_graph();
  breakage(g);
  Status s = verify(g);
  ASSERT_FALSE(s.ok()) << "expected: " << detail;
  EXPECT_NE(s.message().find(detail), std::string::npos) << s.message();
}

Op& mutable_op(Graph& g, const std::string& name) {
  for (Op& op : g.ops) {
    if (op.name == name) return op;
  }
  ADD_FAILURE() << "no op " << name;
  return g.ops.front();
}

TEST(GraphVerify, CatchesUseBeforeDefinition) {
  expect_verify_error([](Graph& g) { std::swap(mutable_op(g, "q_proj"), mutable_op(g, "ln")); },
                      "op 1 'q_proj' (linear): reads 'ln' before op 2 'ln' (rms_norm) produces it");
}

TEST(GraphVerify, CatchesDoubleProducer) {
  expect_verify_error(
      [](Graph& g) { mutable_op(g, "k_proj").outputs = mutable_op(g, "q_proj").outputs; },
      "'k_proj' (linear): tensor 'q_proj' is already produced by op 2 'q_proj'");
}

TEST(GraphVerify, CatchesWrongShapeAndType) {
  expect_verify_error(
      [](Graph& g) {
        g.tensors[size_t(g.find("q_proj"))].shape = {3, 15};
      },
      "'q_proj' (linear): output 'q_proj' is [3, 15] bf16, expected [3, 16] bf16");
  expect_verify_error([](Graph& g) { g.tensors[size_t(g.find("silu_mul"))].type = ElemType::kF32; },
                      "output 'silu_mul' is [3, 12] f32, expected [3, 12] bf16");
  // Inference re-runs on the inputs, so a corrupted weight shape is caught at its reader.
  expect_verify_error(
      [](Graph& g) {
        g.tensors[size_t(g.find("o.w"))].shape = {8, 15};
      },
      "'o_proj' (linear): weight 'o.w' [8, 15] bf16 expects 15 input features");
}

TEST(GraphVerify, CatchesUnusedWeight) {
  expect_verify_error(
      [](Graph& g) {
        g.tensors.push_back({TensorId(g.tensors.size()),
                             "stray.weight",
                             ElemType::kBF16,
                             {4},
                             TensorKind::kWeight});
      },
      "weight 'stray.weight' is read by no op");
}

TEST(GraphVerify, CatchesActivationWithoutProducer) {
  expect_verify_error(
      [](Graph& g) {
        g.tensors.push_back(
            {TensorId(g.tensors.size()), "orphan", ElemType::kBF16, {4}, TensorKind::kActivation});
      },
      "activation tensor 'orphan' is produced by no op");
}

TEST(GraphVerify, CatchesDeadOpsAndMissingOutputs) {
  expect_verify_error(
      [](Graph& g) { g.tensors[size_t(g.find("next_token_ids"))].kind = TensorKind::kActivation; },
      "'argmax' (argmax): contributes to no output or state update");
  expect_verify_error(
      [](Graph& g) {
        for (Tensor& t : g.tensors) {
          if (t.kind == TensorKind::kOutput) t.kind = TensorKind::kActivation;
        }
      },
      "graph has no output");
}

TEST(GraphVerify, CatchesUnsafeStateUpdates) {
  // Attention reading the cache as it was before the append would race the in-place write.
  expect_verify_error(
      [](Graph& g) { mutable_op(g, "attention").inputs[1] = g.find("k_cache"); },
      "state 'k_cache' is read by 2 ops, but 'k_cache.updated' overwrites it in place");
  expect_verify_error(
      [](Graph& g) { g.tensors[size_t(g.find("k_cache.updated"))].state_of = g.find("v_cache"); },
      "output 'k_cache.updated' must be a state tensor updating 'k_cache'");
  expect_verify_error(
      [](Graph& g) { g.tensors[size_t(g.find("k_cache"))].kind = TensorKind::kInput; },
      "must be a start-of-step state tensor");
}

TEST(GraphVerify, CatchesStructuralDamage) {
  expect_verify_error([](Graph& g) { mutable_op(g, "residual").inputs.clear(); },
                      "'residual' (add): takes 2 inputs, got 0");
  expect_verify_error([](Graph& g) { mutable_op(g, "residual").inputs[0] = 1000; },
                      "'residual' (add): tensor id 1000 is not in the graph");
  expect_verify_error([](Graph& g) { mutable_op(g, "residual").attrs = NormAttrs{}; },
                      "'residual' (add): carries the attributes of another op kind");
  expect_verify_error([](Graph& g) { mutable_op(g, "up").name = "gate"; },
                      "op name 'gate' repeats");
  expect_verify_error([](Graph& g) { g.tensors[3].name = "embed"; }, "tensor name 'embed' repeats");
  expect_verify_error([](Graph& g) { std::swap(g.tensors[0], g.tensors[1]); },
                      "tensor 0 'positions' has id 1");
  expect_verify_error([](Graph& g) { mutable_op(g, "residual").inputs.push_back(g.find("ln")); },
                      "'residual' (add): takes 2 inputs, got 3");
  expect_verify_error(
      [](Graph& g) { mutable_op(g, "q_proj").outputs.push_back(g.find("token_ids")); },
      "writes input tensor 'token_ids', which no op may produce");
}

TEST(GraphDump, OneLinePerOpAndStats) {
  Graph g = tiny_graph();
  const std::string dump = graph_to_string(g);
  EXPECT_NE(dump.find("linear"), std::string::npos);
  EXPECT_NE(dump.find("q_proj"), std::string::npos);
  EXPECT_NE(dump.find("-> [3, 16] bf16"), std::string::npos) << dump;
  EXPECT_NE(dump.find("{heads=4, kv_heads=2, head_dim=4, scale=0.5}"), std::string::npos) << dump;
  EXPECT_NE(dump.find("outputs: logits [3, 10] bf16, next_token_ids [3] i32"), std::string::npos)
      << dump;
  size_t op_lines = 0;
  for (size_t i = 0; i < g.ops.size(); ++i) {
    op_lines += dump.find(fmt::format("\n{:4} {:<13} {}", i, op_kind_name(g.ops[i].kind),
                                      g.ops[i].name)) != std::string::npos;
  }
  EXPECT_EQ(op_lines, g.ops.size()) << dump;

  GraphStats s = graph_stats(g);
  EXPECT_EQ(s.op_count(OpKind::kLinear), 8);
  EXPECT_EQ(s.op_count(OpKind::kRope), 2);
  EXPECT_EQ(s.op_count(OpKind::kAdd), 2);
  EXPECT_EQ(s.op_count(OpKind::kKvAppend), 1);
  EXPECT_EQ(s.num_weights, 11);
  const int64_t params = kVocab * kHidden + kHidden + 16 * kHidden + 16 + 2 * 8 * kHidden +
                         kHeadDim + kHidden * 16 + 3 * kInter * kHidden;
  EXPECT_EQ(s.weight_elements, params);
  EXPECT_EQ(s.weight_bytes, 2 * params);
  EXPECT_EQ(s.state_bytes, 2 * kSeq * 8 * 2);
}

TEST(GraphTypes, ElemTypeConversions) {
  EXPECT_EQ(elem_type(DType::kBF16), ElemType::kBF16);
  EXPECT_EQ(elem_dtype(ElemType::kF16), DType::kF16);
  EXPECT_FALSE(elem_dtype(ElemType::kI32).has_value());
  EXPECT_EQ(elem_size(ElemType::kI32), 4u);
  EXPECT_EQ(elem_type_name(ElemType::kBF16), "bf16");
  EXPECT_EQ(op_kind_name(OpKind::kHeadRmsNorm), "head_rms_norm");
}

}  // namespace
}  // namespace megalith
