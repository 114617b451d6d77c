// Claimed rows: a linear op whose tasks deal its rows out at run time (LinearParams::claim_rows)
// instead of each computing its own tile. A task of the op claims a group of rows from the
// op's counter, streams and multiplies them, and claims again until the rows run out or it
// holds claim_capacity groups; so the SMs that stream slower compute fewer rows, and the op
// ends when the rows are done rather than when its slowest tile is. Only the megakernel's
// static mode claims; every other executor runs the tiles.
//
// The groups are numbered over the op's parts (the weights it multiplies: q, k and v; gate
// and up as one pair), each part's tiles merged back into whole tensors:
//
//   MEGALITH_ASSIGN_OR_RETURN(std::vector<ClaimedOp> ops, claimed_ops(tg));
//   const ClaimedPart& part = ops[0].parts[1];  // rows [g * group_rows, ...) of part.weight
#pragma once

#include <cstdint>
#include <vector>

#include "megalith/abi/task_abi.h"
#include "megalith/compiler/task_graph.h"
#include "megalith/core/status.h"

namespace megalith {

inline constexpr int kMaxClaimedParts = 3;

// One weight of a claimed op (or the gate and up pair) and what its rows write, as the refs
// of the whole tensors; absent refs keep kNoBuffer.
struct ClaimedPart {
  abi::TensorRef weight, up_weight, bias, up_bias, out;
  int32_t first_group = 0, groups = 0;
};

struct ClaimedOp {
  uint32_t op = 0;  // index in TaskGraph::ops
  abi::TaskKind kind = abi::TaskKind::kRmsNormLinear;
  int32_t group_rows = 0, capacity = 0, total_groups = 0;
  uint32_t task_begin = 0, task_count = 0;
  std::vector<ClaimedPart> parts;
};

// The ref index of a claimed task's output (written, or updated in place).
int claimed_out_ref(abi::TaskKind kind);

// Every claimed op of the graph, in claim_op order. Errors unless each claimed op is a run of
// tasks of one kind with the same input, claim parameters and a claim_op of its own, whose
// tiles cover each part's rows in order, and whose tasks can hold all of its groups.
StatusOr<std::vector<ClaimedOp>> claimed_ops(const TaskGraph& tg);

}  // namespace megalith
