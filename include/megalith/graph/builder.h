// Builds a Graph one op at a time, inferring every output's shape. The first misuse (a shape
// mismatch, an unknown tensor, a duplicate name) is recorded with the op name and every later
// call becomes a no-op returning kNoTensor, so model code stays a straight line and checks
// once, at finish().
//
//   GraphBuilder b;
//   TensorId ids = b.input("token_ids", ElemType::kI32, {t});
//   TensorId table = b.weight("model.embed_tokens.weight", DType::kBF16, {vocab, hidden});
//   TensorId x = b.embedding("embed_tokens", ids, table);
//   TensorId h = b.rms_norm("layers.0.input_layernorm", x, norm_w, 1e-6);
//   TensorId q = b.linear("layers.0.attn.q_proj", h, wq, bq);   // bq may be kNoTensor
//   b.output(b.argmax("argmax", logits), "next_token_ids");
//   MEGALITH_ASSIGN_OR_RETURN(Graph g, std::move(b).finish());   // also runs verify()
#pragma once

#include <set>
#include <string>
#include <utility>
#include <vector>

#include "megalith/core/status.h"
#include "megalith/graph/graph.h"

namespace megalith {

class GraphBuilder {
 public:
  // Leaf tensors. Names must be unique across the graph.
  TensorId input(std::string name, ElemType type, Shape shape);
  TensorId weight(std::string name, DType dtype, Shape shape);
  TensorId state(std::string name, DType dtype, Shape shape);

  TensorId embedding(std::string name, TensorId ids, TensorId table);
  TensorId rms_norm(std::string name, TensorId x, TensorId weight, double eps);
  TensorId linear(std::string name, TensorId x, TensorId weight, TensorId bias = kNoTensor);
  TensorId head_rms_norm(std::string name, TensorId x, TensorId weight, double eps);
  TensorId rope(std::string name, TensorId x, TensorId positions, const RopeConfig& rope,
                int64_t head_dim);
  // Returns the updated (k_cache, v_cache); read those, not the originals, afterwards.
  std::pair<TensorId, TensorId> kv_append(std::string name, TensorId k, TensorId v,
                                          TensorId positions, TensorId k_cache, TensorId v_cache);
  // Scaled by 1/sqrt(head_dim).
  TensorId attention(std::string name, TensorId q, TensorId k_cache, TensorId v_cache,
                     TensorId positions, int64_t num_heads, int64_t num_kv_heads, int64_t head_dim);
  TensorId silu_mul(std::string name, TensorId gate, TensorId up);
  TensorId add(std::string name, TensorId a, TensorId b);
  TensorId argmax(std::string name, TensorId x);

  // Makes activation `t` a graph output named `name` (the host looks outputs up by name).
  TensorId output(TensorId t, std::string name);

  const Status& status() const { return status_; }
  // The graph, verified, or the first error.
  StatusOr<Graph> finish() &&;

 private:
  TensorId leaf(std::string name, ElemType type, Shape shape, TensorKind kind);
  std::vector<TensorId> add_op(OpKind kind, std::string name, std::vector<TensorId> inputs,
                               OpAttrs attrs);
  TensorId add_one(OpKind kind, std::string name, std::vector<TensorId> inputs, OpAttrs attrs = {});
  bool claim_name(std::set<std::string>& names, const std::string& name, const char* what);

  Graph graph_;
  std::set<std::string> tensor_names_, op_names_;
  Status status_;
};

}  // namespace megalith
