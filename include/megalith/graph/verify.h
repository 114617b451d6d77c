// Shape inference and the graph verifier. The builder and the verifier share one inference
// function, so a graph the builder accepts is one the verifier accepts.
//
//   MEGALITH_RETURN_IF_ERROR(verify(graph));   // errors name the op and the tensor
//   StatusOr<std::vector<TensorType>> out = infer_outputs(OpKind::kAdd, {}, {&a, &b});
#pragma once

#include <vector>

#include "megalith/core/status.h"
#include "megalith/graph/graph.h"

namespace megalith {

struct TensorType {
  ElemType type = ElemType::kF32;
  Shape shape;
  TensorKind kind = TensorKind::kActivation;  // kState for the ops that update state
  // Index into the op's inputs of the state tensor this output overwrites in place; -1: none.
  int state_input = -1;

  bool operator==(const TensorType&) const = default;
};

// The outputs an op of `kind` with `attrs` produces from `inputs`, or an error describing the
// first mismatch in terms of the op's operands ("weight [2048, 512] expects 512 input
// features, x has 1024"). The caller prefixes the op name.
StatusOr<std::vector<TensorType>> infer_outputs(OpKind kind, const OpAttrs& attrs,
                                                const std::vector<const Tensor*>& inputs);

// Checks that `g` is well formed:
//  - tensor ids match their index, names are unique and non-empty, dims are positive;
//  - inputs, weights and start-of-step state are produced by no op; activations, outputs and
//    state updates by exactly one; weights are floating point;
//  - ops are in topological order and their outputs match infer_outputs re-run on their inputs;
//  - a state update overwrites a start-of-step state tensor its own op reads, each at most
//    once, and no other op reads the overwritten value (so updating in place is safe);
//  - every weight is read, there is at least one output, and every op contributes to an
//    output or a state update.
Status verify(const Graph& g);

}  // namespace megalith
