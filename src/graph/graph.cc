#include "megalith/graph/graph.h"

#include <fmt/format.h>

#include <algorithm>

#include "megalith/core/status.h"

namespace megalith {

std::optional<DType> elem_dtype(ElemType t) {
  switch (t) {
    case ElemType::kF32: return DType::kF32;
    case ElemType::kBF16: return DType::kBF16;
    case ElemType::kF16: return DType::kF16;
    case ElemType::kI32: return std::nullopt;
  }
  return std::nullopt;
}

std::string_view elem_type_name(ElemType t) {
  switch (t) {
    case ElemType::kF32: return "f32";
    case ElemType::kBF16: return "bf16";
    case ElemType::kF16: return "f16";
    case ElemType::kI32: return "i32";
  }
  return "?";
}

std::string_view tensor_kind_name(TensorKind k) {
  switch (k) {
    case TensorKind::kInput: return "input";
    case TensorKind::kWeight: return "weight";
    case TensorKind::kState: return "state";
    case TensorKind::kActivation: return "activation";
    case TensorKind::kOutput: return "output";
  }
  return "?";
}

std::string_view op_kind_name(OpKind k) {
  switch (k) {
    case OpKind::kEmbedding: return "embedding";
    case OpKind::kRmsNorm: return "rms_norm";
    case OpKind::kLinear: return "linear";
    case OpKind::kHeadRmsNorm: return "head_rms_norm";
    case OpKind::kRope: return "rope";
    case OpKind::kKvAppend: return "kv_append";
    case OpKind::kAttention: return "attention";
    case OpKind::kSiluMul: return "silu_mul";
    case OpKind::kAdd: return "add";
    case OpKind::kArgmax: return "argmax";
  }
  return "?";
}

const Tensor& Graph::tensor(TensorId id) const {
  MEGALITH_CHECK(id >= 0 && size_t(id) < tensors.size(), "tensor id {} of {}", id, tensors.size());
  return tensors[size_t(id)];
}

TensorId Graph::find(std::string_view name) const {
  for (const Tensor& t : tensors) {
    if (t.name == name) return t.id;
  }
  return kNoTensor;
}

std::vector<TensorId> Graph::tensors_of_kind(TensorKind kind) const {
  std::vector<TensorId> ids;
  for (const Tensor& t : tensors) {
    if (t.kind == kind) ids.push_back(t.id);
  }
  return ids;
}

GraphStats graph_stats(const Graph& g) {
  GraphStats s;
  for (const Op& op : g.ops) ++s.op_counts[size_t(op.kind)];
  for (const Tensor& t : g.tensors) {
    if (t.kind == TensorKind::kWeight) {
      ++s.num_weights;
      s.weight_elements += t.numel();
      s.weight_bytes += t.nbytes();
    } else if (t.kind == TensorKind::kState && t.state_of == kNoTensor) {
      s.state_bytes += t.nbytes();
    }
  }
  return s;
}

std::string tensor_type_to_string(const Tensor& t) {
  return fmt::format("{} {}", shape_to_string(t.shape), elem_type_name(t.type));
}

namespace {

std::string_view rope_type_name(RopeType t) {
  switch (t) {
    case RopeType::kDefault: return "default";
    case RopeType::kLinear: return "linear";
    case RopeType::kLlama3: return "llama3";
  }
  return "?";
}

std::string attrs_to_string(const OpAttrs& attrs) {
  struct Visitor {
    std::string operator()(std::monostate) const { return ""; }
    std::string operator()(const NormAttrs& a) const { return fmt::format(" {{eps={}}}", a.eps); }
    std::string operator()(const HeadNormAttrs& a) const {
      return fmt::format(" {{eps={}, head_dim={}}}", a.eps, a.head_dim);
    }
    std::string operator()(const RopeAttrs& a) const {
      return fmt::format(" {{{}, theta={}, factor={}, head_dim={}}}", rope_type_name(a.rope.type),
                         a.rope.theta, a.rope.factor, a.head_dim);
    }
    std::string operator()(const AttentionAttrs& a) const {
      return fmt::format(" {{heads={}, kv_heads={}, head_dim={}, scale={:.6g}}}", a.num_heads,
                         a.num_kv_heads, a.head_dim, a.scale);
    }
  };
  return std::visit(Visitor{}, attrs);
}

std::string tensor_list(const Graph& g, const std::vector<TensorId>& ids) {
  std::string out;
  for (TensorId id : ids) {
    if (!out.empty()) out += ", ";
    const Tensor& t = g.tensor(id);
    out += fmt::format("{} {}", t.name, tensor_type_to_string(t));
  }
  return out;
}

}  // namespace

std::string graph_stats_to_string(const GraphStats& s) {
  std::string counts;
  for (int k = 0; k < kNumOpKinds; ++k) {
    if (s.op_counts[size_t(k)] == 0) continue;
    counts += fmt::format(" {}={}", op_kind_name(OpKind(k)), s.op_counts[size_t(k)]);
  }
  return fmt::format("ops:{}\nweights: {} tensors, {} parameters, {} bytes; state: {} bytes\n",
                     counts, s.num_weights, s.weight_elements, s.weight_bytes, s.state_bytes);
}

std::string graph_to_string(const Graph& g) {
  std::string out;
  for (TensorKind kind : {TensorKind::kInput, TensorKind::kState, TensorKind::kOutput}) {
    std::vector<TensorId> ids;
    for (TensorId id : g.tensors_of_kind(kind)) {
      if (g.tensor(id).state_of == kNoTensor) ids.push_back(id);
    }
    out += fmt::format("{}s: {}\n", tensor_kind_name(kind), tensor_list(g, ids));
  }
  out += graph_stats_to_string(graph_stats(g));
  size_t name_width = 0;
  for (const Op& op : g.ops) name_width = std::max(name_width, op.name.size());
  for (size_t i = 0; i < g.ops.size(); ++i) {
    const Op& op = g.ops[i];
    std::string outputs;
    for (TensorId id : op.outputs) {
      if (!outputs.empty()) outputs += ", ";
      // Name an output only where it is not the op's own name (graph outputs, state updates).
      const Tensor& t = g.tensor(id);
      outputs += t.name == op.name ? tensor_type_to_string(t)
                                   : fmt::format("{} {}", t.name, tensor_type_to_string(t));
    }
    out += fmt::format("{:4} {:<13} {:<{}} ({}) -> {}{}\n", i, op_kind_name(op.kind), op.name,
                       name_width, tensor_list(g, op.inputs), outputs, attrs_to_string(op.attrs));
  }
  return out;
}

}  // namespace megalith
