// The compiler: a model's decode-step graph in, an SM-level task graph out.
//
//   MEGALITH_ASSIGN_OR_RETURN(Graph g, build_decode_graph(cfg, 1, 4096));
//   MEGALITH_ASSIGN_OR_RETURN(TaskGraph tg, compile(g, cfg, {.num_workers = 132}));
//
// Passes (docs/compiler.md): fusion and partitioning (lower.cc) -> tile-level dependencies
// from the exact windows each task touches, transitively reduced (dependencies.cc) -> events,
// one per set of producers with the same consumers (events.cc) -> placement on workers
// (placement.cc) -> the activation buffer plan with reuse (buffer_plan.cc) -> the verifier.
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>

#include "megalith/compiler/task_graph.h"
#include "megalith/core/status.h"
#include "megalith/graph/graph.h"
#include "megalith/model/config.h"

namespace megalith {

struct CompileOptions {
  int32_t num_workers = 132;  // one per SM of an H100/H200
  // Sequences a step decodes, one token each (the executors' slots): activations have a row
  // per slot, the KV cache a slice per slot, and attention runs per slot.
  int32_t batch = 1;
  // A linear's tiles are sized so each task moves at most about this many weight bytes; more
  // tasks than workers only when a single round would exceed it.
  int64_t max_task_weight_bytes = 4 << 20;
  // Estimated per-worker streaming bandwidth and per-task overhead, for placement.
  double worker_gbps = 34.0;
  // A linear's tile rows are rounded up to a multiple of this, once a tile has that many:
  // coarser tiles may leave workers without a tile (12288 rows on 132 workers: 128 tiles of 96
  // at 8, 131 of 94 at 2).
  int32_t tile_row_multiple = 8;
  double task_overhead_us = 0.5;
  // Each split of the KV cache (one attention task per KV head and split, then a merge)
  // spans at least this many positions of cache capacity; shorter caches take one task per
  // KV head, which writes the attention output itself. Caches of four times this or more are
  // split at least 8 ways (as the workers allow), each split then shorter than this.
  int64_t attention_keys_per_split = 256;
  // Workers 0 .. attention_workers-1 run only the attention tasks, whose splits are sized to
  // them and whose single splits stage their cache rows in those workers' idle weight rings;
  // the other tasks, and the linears' tiles, use the rest. 0: every worker runs every kind.
  // Measured no faster on the H200 (docs/performance.md, "Dedicated attention workers").
  int32_t attention_workers = 0;
  // The gate/up and residual linears deal their rows out at run time in the megakernel's
  // static mode (compiler/claimed_rows.h) instead of each task computing a fixed tile. Off:
  // measured slower so far (docs/performance.md, "Claimed rows").
  bool claim_rows = false;
  bool verify = true;  // run verify_task_graph() on the result
  // Called after each pass with its name, the passes done and their number (a progress bar).
  std::function<void(std::string_view pass, int done, int total)> on_pass;
};

// `g` must come from build_decode_graph(cfg, ...). Errors name the op that has no task
// pattern or the option that is out of range.
StatusOr<TaskGraph> compile(const Graph& g, const ModelConfig& cfg, const CompileOptions& options);

}  // namespace megalith
