// The task-graph verifier: proves that a compiled program is safe to run on any number of
// workers in any interleaving, in both scheduling modes.
//
//   MEGALITH_RETURN_IF_ERROR(verify_task_graph(tg));
//
// It checks, independently of how the compiler derived them:
//  - structure: refs inside their buffers, waits and signals pointing at real events, each
//    event's trigger count equal to its producers, consumer lists matching the waits;
//  - order: task order is topological; every worker queue is increasing (static mode can
//    never deadlock); the only cross-step wait is the source's on the sink;
//  - the step chain: every task is reached from the source and reaches the sink, so a step's
//    tasks all finish before the next step's start and event counters never mix steps;
//  - hazards: every read of a window is ordered after the last write of it, and every write
//    after the earlier reads and writes of it (reuse of a buffer after its last read).
#pragma once

#include "megalith/compiler/task_graph.h"
#include "megalith/core/status.h"

namespace megalith {

Status verify_task_graph(const TaskGraph& tg);

}  // namespace megalith
