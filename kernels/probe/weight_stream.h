// The host's entry point into the weight-stream probe (weight_stream.cu): the megakernel's own
// weight ring and matrix-vector consumers on synthetic linear tasks, without events, so their
// streaming rate can be measured alone (tests/gpu/weight_stream_bench.cc).
//
//   MegakernelArgs args = {...};   // entries: tasks whose refs[2] is the weight tile
//   megalith::kernels::launch_weight_stream(args, /*matvec=*/true, workers, stream);
#pragma once

#include <cuda_runtime.h>

#include "megakernel/layout.h"

namespace megalith::kernels {

// One worker CTA per queue of args (queue_begin/entries; scratch_floats and num_stages set).
// Every task's weight tile (refs[2]) streams through the ring; with `matvec` the consumers
// multiply it with an input row of ones and count the rows whose result is not
// expected_row_sum into args.counters[0]; without it they only take and free the chunks.
cudaError_t launch_weight_stream(const MegakernelArgs& args, bool matvec, float expected_row_sum,
                                 int workers, cudaStream_t stream);

}  // namespace megalith::kernels
