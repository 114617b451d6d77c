// The compiler passes after lowering, in the order compile() runs them. Internal to
// src/compiler.
#pragma once

#include <map>
#include <vector>

#include "megalith/compiler/compiler.h"
#include "program.h"

namespace megalith::compiler {

// Marks the linear ops whose tasks claim their rows at run time (LinearParams::claim_rows,
// compiler/claimed_rows.h): every gate/up and residual linear whose weights' rows split into
// the megakernel's items.
void mark_claimed_rows(Program& p, const CompileOptions& options);

// A claimed op's tasks (sorted) and the windows any of them may write: its tiles' outputs,
// merged per value into their hull (the tiles of a value are adjacent). By op index.
struct ClaimedWrites {
  std::vector<uint32_t> tasks;
  std::vector<Access> writes;
};
std::map<uint32_t, ClaimedWrites> claimed_writes(const Program& p);

struct DependencyStats {
  int64_t raw_edges = 0;       // read-after-write edges found from the windows
  int64_t ordering_edges = 0;  // write-after-read/write orderings that were not implied
  int64_t reduced_edges = 0;   // implied by other edges, removed
};

// Fills every task's deps with exactly the producers of the windows it reads (and any
// ordering a write needs that is not already implied), then removes the edges other edges
// imply. Errors if a task does not descend from the source.
StatusOr<DependencyStats> add_dependencies(Program& p);

// Static placement: list scheduling in program order on estimated costs; each task goes to
// the worker where it would finish first. Fills cost_us; returns the worker of every task.
std::vector<uint32_t> place_tasks(Program& p, const CompileOptions& options);

// Offsets of activation values in one arena, reusing the bytes of a value once every access
// to it is ordered before the new value's first write. Non-activations get -1.
struct BufferPlan {
  std::vector<int64_t> offset;  // per value
  int64_t arena_bytes = 0;
  int64_t unshared_bytes = 0;   // what the arena would need without reuse
};
BufferPlan plan_buffers(const Program& p);

// The TaskGraph of a placed, planned program: buffers, refs, events (one per set of producers
// with identical consumers) and queues.
TaskGraph assemble(const Program& p, const std::vector<uint32_t>& worker, const BufferPlan& plan,
                   int32_t num_workers);

}  // namespace megalith::compiler
