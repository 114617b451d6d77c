#include "megalith/graph/builder.h"

#include <cmath>

#include "megalith/graph/verify.h"

namespace megalith {

bool GraphBuilder::claim_name(std::set<std::string>& names, const std::string& name,
                              const char* what) {
  if (name.empty()) {
    status_ = invalid_argument("{} with an empty name", what);
  } else if (!names.insert(name).second) {
    status_ = invalid_argument("{} name '{}' is already taken", what, name);
  }
  return status_.ok();
}

TensorId GraphBuilder::leaf(std::string name, ElemType type, Shape shape, TensorKind kind) {
  if (!status_.ok() || !claim_name(tensor_names_, name, "tensor")) return kNoTensor;
  for (int64_t d : shape) {
    if (d <= 0) {
      status_ = invalid_argument("{} '{}' has shape {}: dims must be positive",
                                 tensor_kind_name(kind), name, shape_to_string(shape));
      return kNoTensor;
    }
  }
  const auto id = TensorId(graph_.tensors.size());
  graph_.tensors.push_back({id, std::move(name), type, std::move(shape), kind});
  return id;
}

TensorId GraphBuilder::input(std::string name, ElemType type, Shape shape) {
  return leaf(std::move(name), type, std::move(shape), TensorKind::kInput);
}

TensorId GraphBuilder::weight(std::string name, DType dtype, Shape shape) {
  return leaf(std::move(name), elem_type(dtype), std::move(shape), TensorKind::kWeight);
}

TensorId GraphBuilder::state(std::string name, DType dtype, Shape shape) {
  return leaf(std::move(name), elem_type(dtype), std::move(shape), TensorKind::kState);
}

std::vector<TensorId> GraphBuilder::add_op(OpKind kind, std::string name,
                                           std::vector<TensorId> inputs, OpAttrs attrs) {
  if (!status_.ok()) return {};
  const std::string label = fmt::format("op '{}' ({})", name, op_kind_name(kind));
  std::vector<const Tensor*> operands;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i] < 0 || size_t(inputs[i]) >= graph_.tensors.size()) {
      status_ = invalid_argument("{}: input {} is not a tensor of this graph", label, i);
      return {};
    }
    operands.push_back(&graph_.tensors[size_t(inputs[i])]);
  }
  StatusOr<std::vector<TensorType>> types = infer_outputs(kind, attrs, operands);
  if (!types.ok()) {
    status_ = types.status().with_context(label);
    return {};
  }
  if (!claim_name(op_names_, name, "op")) return {};
  std::vector<TensorId> outputs;
  for (const TensorType& t : *types) {
    // A single output takes the op's name; state updates are named after the state they write.
    std::string tensor_name = name;
    TensorId state_of = kNoTensor;
    if (t.state_input >= 0) {
      state_of = inputs[size_t(t.state_input)];
      tensor_name = graph_.tensors[size_t(state_of)].name + ".updated";
    }
    if (!claim_name(tensor_names_, tensor_name, "tensor")) return {};
    const auto id = TensorId(graph_.tensors.size());
    graph_.tensors.push_back({id, std::move(tensor_name), t.type, t.shape, t.kind, state_of});
    outputs.push_back(id);
  }
  graph_.ops.push_back({kind, std::move(name), std::move(inputs), outputs, std::move(attrs)});
  return outputs;
}

TensorId GraphBuilder::add_one(OpKind kind, std::string name, std::vector<TensorId> inputs,
                               OpAttrs attrs) {
  std::vector<TensorId> out = add_op(kind, std::move(name), std::move(inputs), std::move(attrs));
  return out.empty() ? kNoTensor : out[0];
}

TensorId GraphBuilder::embedding(std::string name, TensorId ids, TensorId table) {
  return add_one(OpKind::kEmbedding, std::move(name), {ids, table});
}

TensorId GraphBuilder::rms_norm(std::string name, TensorId x, TensorId weight, double eps) {
  return add_one(OpKind::kRmsNorm, std::move(name), {x, weight}, NormAttrs{eps});
}

TensorId GraphBuilder::linear(std::string name, TensorId x, TensorId weight, TensorId bias) {
  std::vector<TensorId> inputs = {x, weight};
  if (bias != kNoTensor) inputs.push_back(bias);
  return add_one(OpKind::kLinear, std::move(name), std::move(inputs));
}

TensorId GraphBuilder::head_rms_norm(std::string name, TensorId x, TensorId weight, double eps) {
  // head_dim is the weight's length; an invalid weight id is reported by add_op.
  const bool known = weight >= 0 && size_t(weight) < graph_.tensors.size() &&
                     graph_.tensors[size_t(weight)].shape.size() == 1;
  const int64_t head_dim = known ? graph_.tensors[size_t(weight)].shape[0] : 0;
  return add_one(OpKind::kHeadRmsNorm, std::move(name), {x, weight}, HeadNormAttrs{eps, head_dim});
}

TensorId GraphBuilder::rope(std::string name, TensorId x, TensorId positions,
                            const RopeConfig& rope, int64_t head_dim) {
  return add_one(OpKind::kRope, std::move(name), {x, positions}, RopeAttrs{rope, head_dim});
}

std::pair<TensorId, TensorId> GraphBuilder::kv_append(std::string name, TensorId k, TensorId v,
                                                      TensorId positions, TensorId k_cache,
                                                      TensorId v_cache) {
  std::vector<TensorId> out =
      add_op(OpKind::kKvAppend, std::move(name), {k, v, positions, k_cache, v_cache}, {});
  if (out.size() != 2) return {kNoTensor, kNoTensor};
  return {out[0], out[1]};
}

TensorId GraphBuilder::attention(std::string name, TensorId q, TensorId k_cache, TensorId v_cache,
                                 TensorId positions, int64_t num_heads, int64_t num_kv_heads,
                                 int64_t head_dim) {
  const double scale = head_dim > 0 ? 1.0 / std::sqrt(double(head_dim)) : 0.0;
  return add_one(OpKind::kAttention, std::move(name), {q, k_cache, v_cache, positions},
                 AttentionAttrs{num_heads, num_kv_heads, head_dim, scale});
}

TensorId GraphBuilder::silu_mul(std::string name, TensorId gate, TensorId up) {
  return add_one(OpKind::kSiluMul, std::move(name), {gate, up});
}

TensorId GraphBuilder::add(std::string name, TensorId a, TensorId b) {
  return add_one(OpKind::kAdd, std::move(name), {a, b});
}

TensorId GraphBuilder::argmax(std::string name, TensorId x) {
  return add_one(OpKind::kArgmax, std::move(name), {x});
}

TensorId GraphBuilder::output(TensorId t, std::string name) {
  if (!status_.ok()) return kNoTensor;
  if (t < 0 || size_t(t) >= graph_.tensors.size()) {
    status_ = invalid_argument("output '{}': not a tensor of this graph", name);
    return kNoTensor;
  }
  Tensor& tensor = graph_.tensors[size_t(t)];
  if (tensor.kind != TensorKind::kActivation) {
    status_ = invalid_argument("output '{}': '{}' is a {} tensor, not an activation", name,
                               tensor.name, tensor_kind_name(tensor.kind));
    return kNoTensor;
  }
  if (name != tensor.name) {
    if (!claim_name(tensor_names_, name, "tensor")) return kNoTensor;
    tensor_names_.erase(tensor.name);
    tensor.name = std::move(name);
  }
  tensor.kind = TensorKind::kOutput;
  return t;
}

StatusOr<Graph> GraphBuilder::finish() && {
  if (!status_.ok()) return status_;
  MEGALITH_RETURN_IF_ERROR(verify(graph_));
  return std::move(graph_);
}

}  // namespace megalith
