// Fusion and partitioning: the decode graph's ops, matched against the fused task patterns
// and split into tasks sized for one worker each. Internal to src/compiler.
#pragma once

#include "megalith/compiler/compiler.h"
#include "program.h"

namespace megalith::compiler {

// Tasks come out in a topological order with their exact windows; deps are left empty.
StatusOr<Program> lower(const Graph& g, const ModelConfig& cfg, const CompileOptions& options);

// Rows per tile when `rows` rows of `row_bytes` each are shared among `workers`: about one
// round of tasks (more when a task would exceed max_bytes), tiles a multiple of 8 rows when
// they are at least that big, and no more tasks than whole rounds.
int64_t choose_tile_rows(int64_t rows, int64_t row_bytes, int64_t workers, int64_t max_bytes,
                         int64_t multiple);

}  // namespace megalith::compiler
