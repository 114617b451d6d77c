// The host's entry points into the megakernel (static mode): one cooperative launch runs
// every worker's queue once per step for steps [args.first_step, args.end_step).
//
//   size_t smem = megakernel_smem_bytes(args.scratch_floats, args.num_stages);
//   int workers_fit = 0;
//   cudaError_t e = megakernel_max_workers(smem, &workers_fit);
//   e = launch_megakernel(args, num_workers, stream);
#pragma once

#include <cuda_runtime.h>

#include "megakernel/layout.h"

namespace megalith::kernels {

// How many worker CTAs with `smem_bytes` of shared memory can be resident at once on the
// current device (a cooperative launch needs them all resident).
cudaError_t megakernel_max_workers(size_t smem_bytes, int* workers);

// Launches `num_workers` worker CTAs cooperatively on `stream`; asynchronous.
cudaError_t launch_megakernel(const MegakernelArgs& args, int num_workers, cudaStream_t stream);

}  // namespace megalith::kernels
