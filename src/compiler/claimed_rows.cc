#include "megalith/compiler/claimed_rows.h"

#include <fmt/format.h>

#include <map>

namespace megalith {

namespace {

using abi::TaskKind;
using abi::TensorRef;

struct RefIndex {
  int weight, up_weight, bias, up_bias, out;
};
RefIndex ref_index(TaskKind kind) {
  switch (kind) {
    case TaskKind::kLinearResidual: return {1, -1, 2, -1, 3};
    case TaskKind::kRmsNormGateUpSilu: return {2, 3, 4, 5, 6};
    default: return {2, -1, 3, -1, 4};
  }
}

uint64_t elem_bytes(const TensorRef& r) { return elem_size(ElemType(uint8_t(r.type))); }

bool same_window(const TensorRef& a, const TensorRef& b) {
  return a.buffer == b.buffer && a.type == b.type && a.offset == b.offset && a.rows == b.rows &&
         a.cols == b.cols && a.row_stride == b.row_stride;
}

// Appends tile `next` to the whole-tensor ref `whole`: rows of a weight, or columns of a row
// vector (bias, output). False when it does not continue `whole` exactly.
bool append_rows(TensorRef& whole, const TensorRef& next) {
  if (next.buffer != whole.buffer || next.type != whole.type || next.cols != whole.cols ||
      next.row_stride != whole.row_stride || next.access != whole.access ||
      next.offset != whole.offset + uint64_t(whole.rows) * uint64_t(whole.row_stride) * elem_bytes(whole)) {
    return false;
  }
  whole.rows += next.rows;
  return true;
}
bool append_cols(TensorRef& whole, const TensorRef& next) {
  if (whole.buffer == abi::kNoBuffer || next.buffer == abi::kNoBuffer) {
    return whole.buffer == next.buffer;
  }
  if (next.buffer != whole.buffer || next.type != whole.type || next.rows != 1 ||
      whole.rows != 1 || next.access != whole.access ||
      next.offset != whole.offset + uint64_t(whole.cols) * elem_bytes(whole)) {
    return false;
  }
  whole.cols += next.cols;
  whole.row_stride = whole.cols;
  return true;
}

}  // namespace

int claimed_out_ref(TaskKind kind) { return ref_index(kind).out; }

StatusOr<std::vector<ClaimedOp>> claimed_ops(const TaskGraph& tg) {
  std::map<int32_t, ClaimedOp> by_index;
  for (uint32_t o = 0; o < tg.ops.size(); ++o) {
    const FusedOpInfo& info = tg.ops[o];
    if (info.task_count == 0 || uint64_t(info.task_begin) + info.task_count > tg.tasks.size()) continue;
    const abi::TaskDesc& first = tg.tasks[info.task_begin];
    if (!abi::claims_rows(first.kind, first.params)) continue;
    const abi::LinearParams& lp = first.params.linear;
    const auto fail = [&](std::string_view why) {
      return invalid_argument("task graph: claimed op '{}': {}", info.name, why);
    };
    if (lp.claim_capacity < 1 || lp.claim_op < 0) return fail("no capacity or no claim index");
    if (!by_index.emplace(lp.claim_op, ClaimedOp{}).second) {
      return fail(fmt::format("another op has claim index {}", lp.claim_op));
    }
    ClaimedOp& c = by_index[lp.claim_op];
    c.op = o;
    c.kind = first.kind;
    c.group_rows = lp.claim_rows;
    c.capacity = lp.claim_capacity;
    c.task_begin = info.task_begin;
    c.task_count = info.task_count;
    const RefIndex ri = ref_index(first.kind);
    const int shared_refs = abi::linear_form(first.kind).norm ? 2 : 1;  // x (and gamma)
    for (uint32_t t = info.task_begin; t < info.task_begin + info.task_count; ++t) {
      const abi::TaskDesc& d = tg.tasks[t];
      const abi::LinearParams& p = d.params.linear;
      if (d.kind != first.kind || d.op != o || p.claim_rows != lp.claim_rows ||
          p.claim_capacity != lp.claim_capacity || p.claim_op != lp.claim_op) {
        return fail(fmt::format("task {} differs from the op's first in kind or claim parameters", t));
      }
      for (int r = 0; r < shared_refs; ++r) {
        if (!same_window(d.refs[r], first.refs[r])) {
          return fail(fmt::format("task {} reads another input than the op's first", t));
        }
      }
      const TensorRef& w = d.refs[ri.weight];
      bool continues = !c.parts.empty();
      if (continues) {
        ClaimedPart& part = c.parts.back();
        continues = w.buffer == part.weight.buffer;
        if (continues &&
            !(append_rows(part.weight, w) && (ri.up_weight < 0 || append_rows(part.up_weight, d.refs[ri.up_weight])) &&
              append_cols(part.bias, d.refs[ri.bias]) &&
              (ri.up_bias < 0 || append_cols(part.up_bias, d.refs[ri.up_bias])) &&
              append_cols(part.out, d.refs[ri.out]))) {
          return fail(fmt::format("task {}'s tile does not continue the one before", t));
        }
      }
      if (!continues) {
        for (const ClaimedPart& seen : c.parts) {
          if (seen.weight.buffer == w.buffer) return fail("a weight's tiles are not consecutive");
        }
        ClaimedPart part;
        part.weight = w;
        if (ri.up_weight >= 0) part.up_weight = d.refs[ri.up_weight];
        part.bias = d.refs[ri.bias];
        if (ri.up_bias >= 0) part.up_bias = d.refs[ri.up_bias];
        part.out = d.refs[ri.out];
        if (part.out.rows != 1 || part.out.cols != w.rows ||
            (ri.up_weight >= 0 && part.up_weight.rows != w.rows)) {
          return fail(fmt::format("task {}'s output is not one row of its tile's rows", t));
        }
        c.parts.push_back(part);
      }
    }
    if (c.parts.size() > size_t(kMaxClaimedParts)) {
      return fail(fmt::format("{} weights, at most {} can be claimed together", c.parts.size(),
                              kMaxClaimedParts));
    }
    for (ClaimedPart& part : c.parts) {
      if (part.out.cols != part.weight.rows) return fail("a part's output does not match its rows");
      part.first_group = c.total_groups;
      part.groups = (part.weight.rows + c.group_rows - 1) / c.group_rows;
      c.total_groups += part.groups;
    }
    if (int64_t(c.capacity) * c.task_count < c.total_groups) {
      return fail(fmt::format("{} tasks of {} groups each cannot hold its {} groups", c.task_count,
                              c.capacity, c.total_groups));
    }
  }
  int64_t claiming = 0, covered = 0;
  for (const abi::TaskDesc& d : tg.tasks) claiming += abi::claims_rows(d.kind, d.params) ? 1 : 0;
  for (const auto& [index, op] : by_index) covered += op.task_count;
  if (claiming != covered) {
    return invalid_argument("task graph: {} tasks claim rows outside an op whose tasks all do",
                            claiming - covered);
  }
  std::vector<ClaimedOp> ops;
  for (auto& [index, op] : by_index) {
    if (index != int32_t(ops.size())) {
      return invalid_argument("task graph: claim indices are not 0..{}", by_index.size() - 1);
    }
    ops.push_back(std::move(op));
  }
  return ops;
}

}  // namespace megalith
