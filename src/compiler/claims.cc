#include <algorithm>
#include <map>

#include "megalith/compiler/claimed_rows.h"
#include "passes.h"

namespace megalith::compiler {

namespace {

using abi::TaskKind;

// Columns of a weight that split into the megakernel's matvec items whatever the element type.
constexpr int64_t kClaimColumnMultiple = 256;
// A group is about two of the weight ring's 32 KB stages: small enough to even out the SMs'
// rates within an op, large enough that a claim's latency hides behind the group's copies.
constexpr int64_t kGroupBytes = 64 << 10;
constexpr int64_t kMinGroupRows = 4;

}  // namespace

void mark_claimed_rows(Program& p, const CompileOptions& options) {
  if (!options.claim_rows) return;
  int32_t next_index = 0;
  for (const FusedOpInfo& op : p.ops) {
    // q/k/v stays in tiles: each attention task waits only for the tiles of its heads, where
    // claimed rows would make it wait for all of them; the other linears' readers read their
    // outputs whole anyway. So the step's first linear is never claimed either, and no claim
    // waits for the step before to have sampled (which resets the counters) in practice.
    const TaskKind kind = op.kind;
    if (kind != TaskKind::kLinearResidual && kind != TaskKind::kRmsNormGateUpSilu) continue;
    if (op.task_count < 2) continue;
    std::map<ValueId, int64_t> part_rows;
    int64_t cols = -1;
    ElemType type = ElemType::kF32;
    bool ok = true;
    const size_t weight_ref = size_t(abi::linear_form(kind).weight[0]);
    for (uint32_t t = op.task_begin; t < op.task_begin + op.task_count; ++t) {
      const ValueId weight = p.tasks[t].refs[weight_ref].value;
      const Value& w = p.values[size_t(weight)];
      if (cols < 0) cols = w.cols, type = w.type;
      ok &= w.cols == cols && w.type == type && w.cols % kClaimColumnMultiple == 0;
      part_rows[weight] = w.rows;
    }
    if (!ok || part_rows.size() > 3) continue;
    const int64_t group_bytes = kind == TaskKind::kRmsNormGateUpSilu ? kGroupBytes / 2 : kGroupBytes;
    const int64_t rows = std::max(kMinGroupRows, group_bytes / (cols * int64_t(elem_size(type))));
    int64_t groups = 0;
    for (const auto& [value, n] : part_rows) groups += (n + rows - 1) / rows;
    const int64_t fair = (groups + op.task_count - 1) / op.task_count;
    for (uint32_t t = op.task_begin; t < op.task_begin + op.task_count; ++t) {
      abi::LinearParams& lp = p.tasks[t].params.linear;
      lp.claim_rows = int32_t(rows);
      lp.claim_capacity = int32_t(2 * fair + 2);
      lp.claim_op = next_index;
    }
    ++next_index;
  }
}

std::map<uint32_t, ClaimedWrites> claimed_writes(const Program& p) {
  std::map<uint32_t, ClaimedWrites> by_op;
  for (uint32_t t = 0; t < p.tasks.size(); ++t) {
    const Task& task = p.tasks[t];
    if (!abi::claims_rows(task.kind, task.params)) continue;
    ClaimedWrites& c = by_op[task.op];
    c.tasks.push_back(t);
    const Access& out = task.refs[size_t(claimed_out_ref(task.kind))];
    auto it = std::find_if(c.writes.begin(), c.writes.end(),
                           [&](const Access& a) { return a.value == out.value; });
    if (it == c.writes.end()) {
      c.writes.push_back(out);
      continue;
    }
    const int64_t r1 = std::max(it->row0 + it->rows, out.row0 + out.rows);
    const int64_t c1 = std::max(it->col0 + it->cols, out.col0 + out.cols);
    it->row0 = std::min(it->row0, out.row0);
    it->col0 = std::min(it->col0, out.col0);
    it->rows = r1 - it->row0;
    it->cols = c1 - it->col0;
  }
  return by_op;
}

}  // namespace megalith::compiler
