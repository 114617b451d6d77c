// The host's entry point into the weight-stream probe (weight_stream.cu): the megakernel's own
// weight ring and matrix-vector consumers on synthetic linear tasks, without events, so their
// streaming rate can be measured alone (tests/gpu/weight_stream_bench.cc).
//
//   MegakernelArgs args = {...};   // entries: tasks whose refs[2] is the weight tile
//   megalith::kernels::launch_weight_stream(args, WeightStreamMode::kMatvec, sum, workers, stream);
#pragma once

#include <cuda_runtime.h>

#include "megakernel/layout.h"

namespace megalith::kernels {

// What the probe's consumers do with each task's weight tile (refs[2]):
enum class WeightStreamMode {
  kCopiesOnly,    // take and free its chunks as the ring fills them
  kMatvec,        // multiply it with an input row of ones, counting the rows whose result is
                  // not expected_row_sum into args.counters[0]
  kProductsOnly,  // the same products on stages the producer hands over without copying
                  // into them: the consumers' own rate (results not checked)
};

// One worker CTA per queue of args (queue_begin/entries; scratch_floats and num_stages set).
cudaError_t launch_weight_stream(const MegakernelArgs& args, WeightStreamMode mode,
                                 float expected_row_sum, int workers, cudaStream_t stream);

}  // namespace megalith::kernels
