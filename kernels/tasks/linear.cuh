// The body the linear kinds share (rms_norm_linear, linear_residual, rms_norm_gate_up_silu,
// lm_head): each slot's input row into shared memory (normalized or as is), the products of
// the kind's weight tiles as they stream through the ring, then the kind's epilogue (its own
// file). The megakernel's loop holds one copy of it for the four kinds, so as a worker's
// tasks alternate between them (q/k/v, o_proj, gate/up, down) the code they run is the code
// already in the SM's instruction caches; a copy per kind was fetched anew by every task.
#pragma once

#include "megakernel/task_env.cuh"
#include "tasks/linear_claims.cuh"
#include "tasks/linear_common.cuh"
#include "tasks/linear_residual.cuh"
#include "tasks/lm_head.cuh"
#include "tasks/rms_norm_gate_up_silu.cuh"
#include "tasks/rms_norm_linear.cuh"

namespace megalith::kernels {

template <KernelPaths P>
__device__ inline void run_linear(TaskEnv& env, const abi::TaskDesc& t) {
  if (claims_rows<P>(env.args, t)) return run_claimed_linear(env, t);
  const abi::LinearForm form = abi::linear_form(t.kind);
  const int32_t rows = t.refs[form.weight[0]].rows, slots = t.refs[0].rows;
  const uint32_t x_floats = linear_x_floats(t.refs[0].cols);
  // The scratch as task_scratch_floats() sizes it: the input rows, then the products of each
  // weight tile (the tiles of a kind have the same rows), then the matvec's partial sums.
  float* xs = load_slot_rows<P>(env, t, form.norm);
  env.ring.input_loaded();  // the producer streams the rest of the tile from here
  float* acc = xs + slots * x_floats;
  float* part = acc + form.weights * slots * rows;
  // Not unrolled: a second copy of the product loop is what this body exists to avoid.
#pragma unroll 1
  for (int i = 0; i < form.weights; ++i) {
    if (i > 0) consumer_sync();  // the last tile's sums read `part` until here
    if (!stream_matvec<P>(env, t.refs[form.weight[i]], xs, acc + i * slots * rows, part, slots,
                       x_floats)) {
      return;
    }
  }
  switch (t.kind) {
    case abi::TaskKind::kRmsNormLinear: finish_rms_norm_linear(env, t, acc); return;
    case abi::TaskKind::kLinearResidual: finish_linear_residual(env, t, acc); return;
    case abi::TaskKind::kRmsNormGateUpSilu: finish_rms_norm_gate_up_silu(env, t, acc); return;
    case abi::TaskKind::kLmHead: finish_lm_head(env, t, acc); return;
    default: return;
  }
}

}  // namespace megalith::kernels
