// The compiler's working form of a task graph: tasks that reference logical values (weights,
// activations, state, host buffers) through exact windows, before events, placement and the
// buffer plan turn them into a TaskGraph. Internal to src/compiler.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "megalith/abi/task_abi.h"
#include "megalith/compiler/task_graph.h"

namespace megalith::compiler {

using ValueId = int32_t;
inline constexpr ValueId kNoValue = -1;

// A 2-D tensor with a home in a buffer. Weights keep their Hugging Face name.
struct Value {
  std::string name;
  BufferKind kind = BufferKind::kActivation;
  ElemType type = ElemType::kF32;
  int64_t rows = 0, cols = 0;
  std::vector<uint8_t> data;  // kConstant

  int64_t bytes() const { return rows * cols * int64_t(elem_size(type)); }
};

// The window [row0, row0+rows) x [col0, col0+cols) of a value.
struct Access {
  ValueId value = kNoValue;  // kNoValue: an absent optional ref
  abi::RefAccess access = abi::RefAccess::kRead;
  int64_t row0 = 0, rows = 0, col0 = 0, cols = 0;

  bool reads() const { return value != kNoValue && access != abi::RefAccess::kWrite; }
  bool writes() const { return value != kNoValue && access != abi::RefAccess::kRead; }
};

struct Task {
  abi::TaskKind kind = abi::TaskKind::kEmbedding;
  uint32_t op = 0;
  abi::TaskParams params = {};
  std::vector<Access> refs;     // in the order tasks.def lists them
  std::vector<uint32_t> deps;   // same-step predecessors (task indices), sorted
  double cost_us = 0;
};

struct Program {
  std::vector<Value> values;
  std::vector<Task> tasks;  // topological order
  std::vector<FusedOpInfo> ops;
  uint32_t source = 0, sink = 0;
  int32_t batch = 0, max_seq_len = 0, vocab = 0;  // batch: sequences a step decodes
};

}  // namespace megalith::compiler
