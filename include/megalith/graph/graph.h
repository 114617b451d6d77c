// The computation graph of one decode step: tensors and the ops between them, in topological
// order. It is plain data; GraphBuilder (builder.h) makes well-formed graphs and verify()
// (verify.h) proves a graph well formed.
//
//   const Graph& g = ...;
//   for (const Op& op : g.ops) fmt::print("{} reads {}\n", op.name, g.tensor(op.inputs[0]).name);
//   fmt::print("{}", graph_to_string(g));               // one line per op
//   GraphStats stats = graph_stats(g);                  // op counts, weight bytes
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "megalith/core/dtype.h"
#include "megalith/core/tensor.h"
#include "megalith/model/config.h"

namespace megalith {

// Element type of a graph tensor. DType covers weights and activations; token ids and
// positions also need int32, which no checkpoint stores, so the graph has its own type.
enum class ElemType : uint8_t { kF32, kBF16, kF16, kI32 };

constexpr ElemType elem_type(DType t) {
  switch (t) {
    case DType::kF32: return ElemType::kF32;
    case DType::kBF16: return ElemType::kBF16;
    case DType::kF16: return ElemType::kF16;
  }
  return ElemType::kF32;
}
std::optional<DType> elem_dtype(ElemType t);  // nullopt for kI32
constexpr bool is_float(ElemType t) { return t != ElemType::kI32; }
constexpr size_t elem_size(ElemType t) {
  return t == ElemType::kBF16 || t == ElemType::kF16 ? 2 : 4;
}
std::string_view elem_type_name(ElemType t);  // "f32", "bf16", "f16", "i32"

// Index into Graph::tensors.
using TensorId = int32_t;
inline constexpr TensorId kNoTensor = -1;

enum class TensorKind : uint8_t {
  kInput,       // fed by the host each step (token ids, positions)
  kWeight,      // read-only parameter; never depends on another op, so it can be prefetched
  kState,       // persists across steps (KV cache)
  kActivation,  // produced by exactly one op, dead after the step
  kOutput,      // an activation the host reads back (logits, next token ids)
};
std::string_view tensor_kind_name(TensorKind k);

struct Tensor {
  TensorId id = kNoTensor;
  std::string name;  // unique; for weights the Hugging Face parameter name
  ElemType type = ElemType::kF32;
  Shape shape;
  TensorKind kind = TensorKind::kActivation;
  // For a kState tensor written by an op: the state tensor whose storage it overwrites in
  // place (its value at the start of the step). kNoTensor for that start-of-step value itself.
  TensorId state_of = kNoTensor;

  int64_t numel() const { return shape_numel(shape); }
  int64_t nbytes() const { return numel() * int64_t(elem_size(type)); }
};

// What each op computes. Rows are tokens; every activation is 2-D [tokens, features] except
// token ids and positions ([tokens], int32).
enum class OpKind : uint8_t {
  kEmbedding,    // (ids [T] i32, table [V, H]) -> [T, H]: rows of the table
  kRmsNorm,      // (x [T, H], weight [H]) -> [T, H]: x / rms(x) * weight
  kLinear,       // (x [T, in], weight [out, in], bias [out]?) -> [T, out]: x W^T + b
  kHeadRmsNorm,  // (x [T, n*hd], weight [hd]) -> [T, n*hd]: rms_norm over each head (Qwen3)
  kRope,         // (x [T, n*hd], positions [T] i32) -> [T, n*hd]: rotary, rotate-half layout
  kKvAppend,     // (k, v [T, kv*hd], positions [T], k_cache, v_cache [S, kv*hd])
                 //   -> (k_cache', v_cache'): row positions[t] of each cache = row t of k / v
  kAttention,    // (q [T, h*hd], k_cache, v_cache [S, kv*hd], positions [T]) -> [T, h*hd]:
                 //   causal GQA, query t sees cache rows 0..positions[t]
  kSiluMul,      // (gate, up [T, I]) -> [T, I]: silu(gate) * up
  kAdd,          // (a, b [T, H]) -> [T, H]
  kArgmax,       // (x [T, V]) -> [T] i32: index of each row's maximum, the first on ties
};
inline constexpr int kNumOpKinds = 10;
std::string_view op_kind_name(OpKind k);  // "embedding", "rms_norm", ...

struct NormAttrs {  // kRmsNorm
  double eps = 1e-6;
};
struct HeadNormAttrs {  // kHeadRmsNorm
  double eps = 1e-6;
  int64_t head_dim = 0;
};
struct RopeAttrs {  // kRope
  RopeConfig rope;
  int64_t head_dim = 0;
};
struct AttentionAttrs {  // kAttention
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  double scale = 0.0;  // multiplies q.k; 1/sqrt(head_dim) for every supported model
};
// std::monostate for the ops without attributes.
using OpAttrs = std::variant<std::monostate, NormAttrs, HeadNormAttrs, RopeAttrs, AttentionAttrs>;

struct Op {
  OpKind kind = OpKind::kAdd;
  std::string name;              // unique and readable: "layers.3.attn.q_proj"
  std::vector<TensorId> inputs;  // in the order of the OpKind comment; an absent bias is omitted
  std::vector<TensorId> outputs;
  OpAttrs attrs;
};

struct Graph {
  std::vector<Tensor> tensors;  // tensors[i].id == i
  std::vector<Op> ops;          // topological order

  const Tensor& tensor(TensorId id) const;  // aborts on an id out of range
  // kNoTensor when no tensor has that name.
  TensorId find(std::string_view name) const;
  std::vector<TensorId> tensors_of_kind(TensorKind kind) const;  // in id order
};

struct GraphStats {
  std::array<int64_t, kNumOpKinds> op_counts{};  // indexed by OpKind
  int64_t num_weights = 0;
  int64_t weight_elements = 0;  // parameters; a weight read by two ops counts once
  int64_t weight_bytes = 0;
  int64_t state_bytes = 0;  // start-of-step state only: updates overwrite it in place

  int64_t op_count(OpKind k) const { return op_counts[size_t(k)]; }
};
GraphStats graph_stats(const Graph& g);

// For a verified graph: a header (inputs, states, outputs, stats) and one line per op:
//   "   2 linear        layers.0.attn.q_proj  (layers.0.input_layernorm [4, 1024] bf16,
//    model.layers.0.self_attn.q_proj.weight [2048, 1024] bf16) -> [4, 2048] bf16" (one line)
std::string graph_to_string(const Graph& g);
std::string graph_stats_to_string(const GraphStats& s);
// "[4, 2048] bf16"
std::string tensor_type_to_string(const Tensor& t);

}  // namespace megalith
