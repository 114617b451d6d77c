#include "megalith/graph/verify.h"

#include <fmt/format.h>

#include <set>
#include <string>

namespace megalith {
namespace {

// Operand names per op kind, in input order, for error messages.
std::vector<std::string_view> operand_names(OpKind kind) {
  switch (kind) {
    case OpKind::kEmbedding: return {"ids", "table"};
    case OpKind::kRmsNorm: return {"x", "weight"};
    case OpKind::kLinear: return {"x", "weight", "bias"};
    case OpKind::kHeadRmsNorm: return {"x", "weight"};
    case OpKind::kRope: return {"x", "positions"};
    case OpKind::kKvAppend: return {"k", "v", "positions", "k_cache", "v_cache"};
    case OpKind::kAttention: return {"q", "k_cache", "v_cache", "positions"};
    case OpKind::kSiluMul: return {"gate", "up"};
    case OpKind::kAdd: return {"a", "b"};
    case OpKind::kArgmax: return {"x"};
  }
  return {};
}

// The OpAttrs alternative each kind carries.
size_t attrs_index(OpKind kind) {
  switch (kind) {
    case OpKind::kRmsNorm: return 1;
    case OpKind::kHeadRmsNorm: return 2;
    case OpKind::kRope: return 3;
    case OpKind::kAttention: return 4;
    default: return 0;
  }
}

// Reads operands of one op and phrases every mismatch in terms of them.
class Operands {
 public:
  Operands(OpKind kind, const std::vector<const Tensor*>& inputs)
      : names_(operand_names(kind)), inputs_(inputs) {}

  const Tensor& operator[](size_t i) const { return *inputs_[i]; }
  const Shape& shape(size_t i) const { return inputs_[i]->shape; }
  int64_t dim(size_t i, size_t d) const { return inputs_[i]->shape[d]; }

  std::string describe(size_t i) const {
    return fmt::format("{} '{}' {}", names_[i], inputs_[i]->name,
                       tensor_type_to_string(*inputs_[i]));
  }

  Status count(size_t min, size_t max) const {
    if (inputs_.size() >= min && inputs_.size() <= max) return {};
    std::string expected = min == max ? fmt::format("{}", min) : fmt::format("{} to {}", min, max);
    return invalid_argument("takes {} inputs, got {}", expected, inputs_.size());
  }

  Status rank(size_t i, size_t r) const {
    if (shape(i).size() == r) return {};
    return invalid_argument("{} must have rank {}", describe(i), r);
  }

  Status floating(size_t i, size_t r) const {
    MEGALITH_RETURN_IF_ERROR(rank(i, r));
    if (is_float(inputs_[i]->type)) return {};
    return invalid_argument("{} must be floating point", describe(i));
  }

  // Token ids and positions: [rows] int32.
  Status indices(size_t i, int64_t rows) const {
    MEGALITH_RETURN_IF_ERROR(rank(i, 1));
    if (inputs_[i]->type != ElemType::kI32) {
      return invalid_argument("{} must be i32", describe(i));
    }
    if (rows >= 0 && dim(i, 0) != rows) {
      return invalid_argument("{} must have {} rows, one per token", describe(i), rows);
    }
    return {};
  }

  Status weight(size_t i, size_t r) const {
    MEGALITH_RETURN_IF_ERROR(floating(i, r));
    if (inputs_[i]->kind == TensorKind::kWeight) return {};
    return invalid_argument("{} must be a weight, not {}", describe(i),
                            tensor_kind_name(inputs_[i]->kind));
  }

  Status same_type(size_t i, size_t j) const {
    if (shape(i) == shape(j) && inputs_[i]->type == inputs_[j]->type) return {};
    return invalid_argument("{} and {} must have the same shape and type", describe(i),
                            describe(j));
  }

  Status divides(size_t i, int64_t head_dim) const {
    if (head_dim > 0 && dim(i, 1) % head_dim == 0) return {};
    return invalid_argument("{} has {} features, not a multiple of head_dim {}", describe(i),
                            dim(i, 1), head_dim);
  }

  Status start_of_step_state(size_t i) const {
    const Tensor& t = *inputs_[i];
    if (t.kind == TensorKind::kState && t.state_of == kNoTensor) return {};
    return invalid_argument("{} must be a start-of-step state tensor", describe(i));
  }

 private:
  std::vector<std::string_view> names_;
  const std::vector<const Tensor*>& inputs_;
};

TensorType like(const Tensor& t) { return {t.type, t.shape}; }

StatusOr<std::vector<TensorType>> infer(OpKind kind, const OpAttrs& attrs, const Operands& in,
                                        size_t num_inputs) {
  switch (kind) {
    case OpKind::kEmbedding: {
      MEGALITH_RETURN_IF_ERROR(in.count(2, 2));
      MEGALITH_RETURN_IF_ERROR(in.indices(0, -1));
      MEGALITH_RETURN_IF_ERROR(in.weight(1, 2));
      return std::vector<TensorType>{{in[1].type, {in.dim(0, 0), in.dim(1, 1)}}};
    }
    case OpKind::kRmsNorm: {
      MEGALITH_RETURN_IF_ERROR(in.count(2, 2));
      MEGALITH_RETURN_IF_ERROR(in.floating(0, 2));
      MEGALITH_RETURN_IF_ERROR(in.weight(1, 1));
      if (in.dim(1, 0) != in.dim(0, 1)) {
        return invalid_argument("{} does not match the {} features of {}", in.describe(1),
                                in.dim(0, 1), in.describe(0));
      }
      if (!(std::get<NormAttrs>(attrs).eps > 0)) return invalid_argument("eps must be positive");
      return std::vector<TensorType>{like(in[0])};
    }
    case OpKind::kLinear: {
      MEGALITH_RETURN_IF_ERROR(in.count(2, 3));
      MEGALITH_RETURN_IF_ERROR(in.floating(0, 2));
      MEGALITH_RETURN_IF_ERROR(in.weight(1, 2));
      if (in.dim(1, 1) != in.dim(0, 1)) {
        return invalid_argument("{} expects {} input features, {} has {}", in.describe(1),
                                in.dim(1, 1), in.describe(0), in.dim(0, 1));
      }
      if (num_inputs == 3) {
        MEGALITH_RETURN_IF_ERROR(in.weight(2, 1));
        if (in.dim(2, 0) != in.dim(1, 0)) {
          return invalid_argument("{} does not match the {} output features of {}", in.describe(2),
                                  in.dim(1, 0), in.describe(1));
        }
      }
      return std::vector<TensorType>{{in[0].type, {in.dim(0, 0), in.dim(1, 0)}}};
    }
    case OpKind::kHeadRmsNorm: {
      const auto& a = std::get<HeadNormAttrs>(attrs);
      MEGALITH_RETURN_IF_ERROR(in.count(2, 2));
      MEGALITH_RETURN_IF_ERROR(in.floating(0, 2));
      MEGALITH_RETURN_IF_ERROR(in.weight(1, 1));
      if (in.dim(1, 0) != a.head_dim) {
        return invalid_argument("{} must have head_dim {} elements", in.describe(1), a.head_dim);
      }
      MEGALITH_RETURN_IF_ERROR(in.divides(0, a.head_dim));
      if (!(a.eps > 0)) return invalid_argument("eps must be positive");
      return std::vector<TensorType>{like(in[0])};
    }
    case OpKind::kRope: {
      const auto& a = std::get<RopeAttrs>(attrs);
      MEGALITH_RETURN_IF_ERROR(in.count(2, 2));
      MEGALITH_RETURN_IF_ERROR(in.floating(0, 2));
      MEGALITH_RETURN_IF_ERROR(in.indices(1, in.dim(0, 0)));
      if (a.head_dim <= 0 || a.head_dim % 2 != 0) {
        return invalid_argument("head_dim {} must be positive and even", a.head_dim);
      }
      MEGALITH_RETURN_IF_ERROR(in.divides(0, a.head_dim));
      if (!(a.rope.theta > 0) || !(a.rope.factor > 0)) {
        return invalid_argument("rope theta {} and factor {} must be positive", a.rope.theta,
                                a.rope.factor);
      }
      return std::vector<TensorType>{like(in[0])};
    }
    case OpKind::kKvAppend: {
      MEGALITH_RETURN_IF_ERROR(in.count(5, 5));
      for (size_t i : {0, 1, 3, 4}) MEGALITH_RETURN_IF_ERROR(in.floating(i, 2));
      MEGALITH_RETURN_IF_ERROR(in.same_type(0, 1));
      MEGALITH_RETURN_IF_ERROR(in.indices(2, in.dim(0, 0)));
      MEGALITH_RETURN_IF_ERROR(in.start_of_step_state(3));
      MEGALITH_RETURN_IF_ERROR(in.start_of_step_state(4));
      MEGALITH_RETURN_IF_ERROR(in.same_type(3, 4));
      if (in.dim(3, 1) != in.dim(0, 1)) {
        return invalid_argument("{} rows do not fit {}", in.describe(0), in.describe(3));
      }
      if (in.dim(3, 0) < in.dim(0, 0)) {
        return invalid_argument("{} has fewer positions than {} has tokens", in.describe(3),
                                in.describe(0));
      }
      TensorType k_cache{in[3].type, in.shape(3), TensorKind::kState, 3};
      TensorType v_cache{in[4].type, in.shape(4), TensorKind::kState, 4};
      return std::vector<TensorType>{k_cache, v_cache};
    }
    case OpKind::kAttention: {
      const auto& a = std::get<AttentionAttrs>(attrs);
      MEGALITH_RETURN_IF_ERROR(in.count(4, 4));
      for (size_t i : {0, 1, 2}) MEGALITH_RETURN_IF_ERROR(in.floating(i, 2));
      MEGALITH_RETURN_IF_ERROR(in.same_type(1, 2));
      MEGALITH_RETURN_IF_ERROR(in.indices(3, in.dim(0, 0)));
      if (a.num_heads <= 0 || a.num_kv_heads <= 0 || a.head_dim <= 0) {
        return invalid_argument("heads {}, kv_heads {} and head_dim {} must be positive",
                                a.num_heads, a.num_kv_heads, a.head_dim);
      }
      if (a.num_heads % a.num_kv_heads != 0) {
        return invalid_argument("{} kv heads do not divide {} query heads", a.num_kv_heads,
                                a.num_heads);
      }
      if (in.dim(0, 1) != a.num_heads * a.head_dim) {
        return invalid_argument("{} must have {} heads x {} = {} features", in.describe(0),
                                a.num_heads, a.head_dim, a.num_heads * a.head_dim);
      }
      if (in.dim(1, 1) != a.num_kv_heads * a.head_dim) {
        return invalid_argument("{} must have {} kv heads x {} = {} features", in.describe(1),
                                a.num_kv_heads, a.head_dim, a.num_kv_heads * a.head_dim);
      }
      if (!(a.scale > 0)) return invalid_argument("scale must be positive");
      return std::vector<TensorType>{like(in[0])};
    }
    case OpKind::kSiluMul:
    case OpKind::kAdd: {
      MEGALITH_RETURN_IF_ERROR(in.count(2, 2));
      MEGALITH_RETURN_IF_ERROR(in.floating(0, 2));
      MEGALITH_RETURN_IF_ERROR(in.same_type(0, 1));
      return std::vector<TensorType>{like(in[0])};
    }
    case OpKind::kArgmax: {
      MEGALITH_RETURN_IF_ERROR(in.count(1, 1));
      MEGALITH_RETURN_IF_ERROR(in.floating(0, 2));
      return std::vector<TensorType>{{ElemType::kI32, {in.dim(0, 0)}}};
    }
  }
  return invalid_argument("unknown op kind {}", int(kind));
}

std::string op_label(const Op& op, size_t index) {
  return fmt::format("op {} '{}' ({})", index, op.name, op_kind_name(op.kind));
}

bool produced_by_op(const Tensor& t) {
  return t.kind == TensorKind::kActivation || t.kind == TensorKind::kOutput ||
         (t.kind == TensorKind::kState && t.state_of != kNoTensor);
}

Status verify_tensors(const Graph& g) {
  std::set<std::string_view> names;
  for (size_t i = 0; i < g.tensors.size(); ++i) {
    const Tensor& t = g.tensors[i];
    if (t.id != TensorId(i)) return invalid_argument("tensor {} '{}' has id {}", i, t.name, t.id);
    if (t.name.empty()) return invalid_argument("tensor {} has no name", i);
    if (!names.insert(t.name).second) return invalid_argument("tensor name '{}' repeats", t.name);
    for (int64_t d : t.shape) {
      if (d <= 0) {
        return invalid_argument("tensor '{}' has shape {}: dims must be positive", t.name,
                                shape_to_string(t.shape));
      }
    }
    if (t.kind == TensorKind::kWeight && !is_float(t.type)) {
      return invalid_argument("weight '{}' must be floating point", t.name);
    }
    if (t.state_of != kNoTensor && t.kind != TensorKind::kState) {
      return invalid_argument("{} tensor '{}' cannot update state", tensor_kind_name(t.kind),
                              t.name);
    }
  }
  return {};
}

// Which op produces each tensor (-1: none), after checking the counts against the kinds.
StatusOr<std::vector<int64_t>> producers(const Graph& g) {
  std::vector<int64_t> producer(g.tensors.size(), -1);
  std::set<std::string_view> op_names;
  for (size_t i = 0; i < g.ops.size(); ++i) {
    const Op& op = g.ops[i];
    if (op.name.empty()) return invalid_argument("op {} has no name", i);
    if (!op_names.insert(op.name).second) return invalid_argument("op name '{}' repeats", op.name);
    for (const auto* ids : {&op.inputs, &op.outputs}) {
      for (TensorId id : *ids) {
        if (id < 0 || size_t(id) >= g.tensors.size()) {
          return invalid_argument("{}: tensor id {} is not in the graph", op_label(op, i), id);
        }
      }
    }
    for (TensorId id : op.outputs) {
      const Tensor& t = g.tensor(id);
      if (!produced_by_op(t)) {
        return invalid_argument("{}: writes {} tensor '{}', which no op may produce",
                                op_label(op, i), tensor_kind_name(t.kind), t.name);
      }
      if (producer[size_t(id)] >= 0) {
        return invalid_argument(
            "{}: tensor '{}' is already produced by {}", op_label(op, i), t.name,
            op_label(g.ops[size_t(producer[size_t(id)])], size_t(producer[size_t(id)])));
      }
      producer[size_t(id)] = int64_t(i);
    }
  }
  for (const Tensor& t : g.tensors) {
    if (produced_by_op(t) && producer[size_t(t.id)] < 0) {
      return invalid_argument("{} tensor '{}' is produced by no op", tensor_kind_name(t.kind),
                              t.name);
    }
  }
  return producer;
}

// Outputs must be what inference says, including which state tensor each overwrites.
Status check_outputs(const Graph& g, const Op& op, size_t index,
                     const std::vector<TensorType>& expected) {
  if (op.outputs.size() != expected.size()) {
    return invalid_argument("{}: has {} outputs, expected {}", op_label(op, index),
                            op.outputs.size(), expected.size());
  }
  for (size_t j = 0; j < expected.size(); ++j) {
    const Tensor& t = g.tensor(op.outputs[j]);
    const TensorType& e = expected[j];
    if (t.type != e.type || t.shape != e.shape) {
      return invalid_argument("{}: output '{}' is {}, expected {} {}", op_label(op, index), t.name,
                              tensor_type_to_string(t), shape_to_string(e.shape),
                              elem_type_name(e.type));
    }
    const TensorId state_of = e.state_input >= 0 ? op.inputs[size_t(e.state_input)] : kNoTensor;
    const bool kind_ok = e.kind == TensorKind::kState
                             ? t.kind == TensorKind::kState
                             : t.kind == TensorKind::kActivation || t.kind == TensorKind::kOutput;
    if (!kind_ok || t.state_of != state_of) {
      return invalid_argument("{}: output '{}' must be {}", op_label(op, index), t.name,
                              state_of == kNoTensor ? std::string("an activation or output")
                                                    : fmt::format("a state tensor updating '{}'",
                                                                  g.tensor(state_of).name));
    }
  }
  return {};
}

}  // namespace

StatusOr<std::vector<TensorType>> infer_outputs(OpKind kind, const OpAttrs& attrs,
                                                const std::vector<const Tensor*>& inputs) {
  if (attrs.index() != attrs_index(kind)) {
    return invalid_argument("carries the attributes of another op kind");
  }
  return infer(kind, attrs, Operands(kind, inputs), inputs.size());
}

Status verify(const Graph& g) {
  MEGALITH_RETURN_IF_ERROR(verify_tensors(g));
  MEGALITH_ASSIGN_OR_RETURN(std::vector<int64_t> producer, producers(g));

  std::vector<bool> defined(g.tensors.size());
  std::vector<int64_t> readers(g.tensors.size());
  for (const Tensor& t : g.tensors) defined[size_t(t.id)] = !produced_by_op(t);
  for (size_t i = 0; i < g.ops.size(); ++i) {
    const Op& op = g.ops[i];
    std::vector<const Tensor*> inputs;
    for (TensorId id : op.inputs) {
      const Tensor& t = g.tensor(id);
      if (!defined[size_t(id)]) {
        const auto p = size_t(producer[size_t(id)]);
        return invalid_argument("{}: reads '{}' before {} produces it", op_label(op, i), t.name,
                                op_label(g.ops[p], p));
      }
      ++readers[size_t(id)];
      inputs.push_back(&t);
    }
    StatusOr<std::vector<TensorType>> expected = infer_outputs(op.kind, op.attrs, inputs);
    if (!expected.ok()) return expected.status().with_context(op_label(op, i));
    MEGALITH_RETURN_IF_ERROR(check_outputs(g, op, i, *expected));
    for (TensorId id : op.outputs) defined[size_t(id)] = true;
  }

  // In place is safe when the op that overwrites a state tensor is its only reader.
  std::vector<TensorId> overwritten_by(g.tensors.size(), kNoTensor);
  for (const Tensor& t : g.tensors) {
    if (t.state_of == kNoTensor) continue;
    TensorId& prev = overwritten_by[size_t(t.state_of)];
    if (prev != kNoTensor) {
      return invalid_argument("state '{}' is overwritten twice, by '{}' and '{}'",
                              g.tensor(t.state_of).name, g.tensor(prev).name, t.name);
    }
    prev = t.id;
    if (readers[size_t(t.state_of)] != 1) {
      return invalid_argument("state '{}' is read by {} ops, but '{}' overwrites it in place",
                              g.tensor(t.state_of).name, readers[size_t(t.state_of)], t.name);
    }
  }

  bool has_output = false;
  std::vector<bool> live(g.tensors.size());
  for (const Tensor& t : g.tensors) {
    if (t.kind == TensorKind::kWeight && readers[size_t(t.id)] == 0) {
      return invalid_argument("weight '{}' is read by no op", t.name);
    }
    has_output |= t.kind == TensorKind::kOutput;
    live[size_t(t.id)] = t.kind == TensorKind::kOutput || t.state_of != kNoTensor;
  }
  if (!has_output) return invalid_argument("graph has no output");
  for (size_t i = g.ops.size(); i-- > 0;) {
    const Op& op = g.ops[i];
    bool op_live = false;
    for (TensorId id : op.outputs) op_live |= live[size_t(id)];
    if (!op_live) {
      return invalid_argument("{}: contributes to no output or state update", op_label(op, i));
    }
    for (TensorId id : op.inputs) live[size_t(id)] = true;
  }
  return {};
}

}  // namespace megalith
