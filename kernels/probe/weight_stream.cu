#include "probe/weight_stream.h"

#include "common/sync.cuh"
#include "megakernel/task_env.cuh"
#include "megakernel/weight_ring.cuh"
#include "tasks/linear_common.cuh"

namespace megalith::kernels {

namespace {

__global__ void __launch_bounds__(WORKER_THREADS, 1)
    weight_stream_kernel(const MegakernelArgs args, bool matvec, float expected_row_sum) {
  extern __shared__ __align__(128) uint8_t smem[];
  const Ring ring = setup_ring(args, smem);
  if (threadIdx.x / 32 == PRODUCER_WARP) {
    if (int(threadIdx.x % 32) < PRODUCER_LANES) run_producer(args, ring);
    return;
  }
  TaskEnv env = consumer_env(args, ring, smem);
  const uint32_t q_begin = args.queue_begin[blockIdx.x], q_end = args.queue_begin[blockIdx.x + 1];
  for (uint32_t q = q_begin; q < q_end; ++q) {
    const abi::TensorRef& w = args.entries[q].task.refs[2];
    float* xs = env.scratch;
    float* acc = xs + linear_x_floats(w.cols);
    if (!matvec) {
      for (int32_t c = 0; c < plan_chunks(w).num_chunks; ++c) {
        if (env.ring.wait(args, 0, 0) == nullptr) return;
        env.ring.release();
      }
      continue;
    }
    for (int i = env.tid; i < w.cols; i += CONSUMER_THREADS) xs[i] = 1.0f;
    consumer_sync();
    if (!stream_matvec(env, w, xs, acc, acc + w.rows)) return;
    for (int o = env.tid; o < w.rows; o += CONSUMER_THREADS) {
      if (fabsf(acc[o] - expected_row_sum) > 1e-3f * fabsf(expected_row_sum)) {
        atomicAdd(reinterpret_cast<unsigned long long*>(args.counters), 1ull);
      }
    }
  }
}

}  // namespace

cudaError_t launch_weight_stream(const MegakernelArgs& args, bool matvec, float expected_row_sum,
                                 int workers, cudaStream_t stream) {
  const size_t smem = megakernel_smem_bytes(args.scratch_floats, args.num_stages);
  cudaError_t e = cudaFuncSetAttribute(weight_stream_kernel,
                                       cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem));
  if (e != cudaSuccess) return e;
  weight_stream_kernel<<<workers, WORKER_THREADS, smem, stream>>>(args, matvec, expected_row_sum);
  return cudaGetLastError();
}

}  // namespace megalith::kernels
