// The host's entry points into the megakernel: one cooperative launch runs every task of
// every worker once per step for steps [args.first_step, args.end_step).
//
//   size_t smem = megakernel_smem_bytes(args.scratch_floats, args.num_stages);
//   int ctas_fit = 0;
//   cudaError_t e = megakernel_max_workers(smem, paths, &ctas_fit);  // >= megakernel_ctas(args)
//   e = launch_megakernel(args, paths, stream);
//
// `paths` picks the kernel: KernelPaths::kBf16Decode where every task is bf16_decode_covers()
// (layout.h) in static mode without claimed rows, else kGeneral.
#pragma once

#include <cuda_runtime.h>

#include "megakernel/layout.h"

namespace megalith::kernels {

// How many worker CTAs with `smem_bytes` of shared memory can be resident at once on the
// current device (a cooperative launch needs them all resident).
cudaError_t megakernel_max_workers(size_t smem_bytes, KernelPaths paths, int* workers);

// The CTAs of a launch: args.num_workers workers, and in dynamic mode the schedulers' CTA.
inline int megakernel_ctas(const MegakernelArgs& args) {
  return int(args.num_workers) + (args.dynamic.num_schedulers > 0 ? 1 : 0);
}

// Launches megakernel_ctas(args) CTAs cooperatively on `stream`; asynchronous.
cudaError_t launch_megakernel(const MegakernelArgs& args, KernelPaths paths, cudaStream_t stream);

// Kernel-per-op mode (the ablation): one ordinary launch of `ctas` CTAs runs one fused op's
// tasks, CTA c the queue [args.queue_begin[c], args.queue_begin[c + 1]), at step
// *args.device_step; launch_advance_step adds one to that step. Both can be captured in a CUDA
// graph. configure_op_kernel sets the kernel's shared memory once, before any launch.
cudaError_t configure_op_kernel(size_t smem_bytes, KernelPaths paths);
cudaError_t launch_op_kernel(const MegakernelArgs& args, KernelPaths paths, int ctas,
                             cudaStream_t stream);
cudaError_t launch_advance_step(int64_t* step, cudaStream_t stream);

}  // namespace megalith::kernels
