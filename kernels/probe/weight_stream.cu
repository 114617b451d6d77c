#include "probe/weight_stream.h"

#include "common/sync.cuh"
#include "megakernel/task_env.cuh"
#include "megakernel/weight_ring.cuh"
#include "tasks/linear_common.cuh"

namespace megalith::kernels {

namespace {

// The producer of WeightStreamMode::kProductsOnly: hands the consumers every chunk of the
// queue as soon as its stage is free, without copying it, so the consumers' own rate shows.
__device__ void run_copyless_producer(const MegakernelArgs& args, const Ring& ring) {
  ProducerState p;
  for (uint32_t q = args.queue_begin[blockIdx.x]; q < args.queue_begin[blockIdx.x + 1]; ++q) {
    const int32_t chunks = plan_chunks(args.entries[q].task.refs[2]).num_chunks;
    for (int32_t c = 0; c < chunks; ++c) {
      if (!wait_free_stage(args, ring, p, 0, 0)) return;
      mbarrier_arrive(&ring.full[p.stage]);
      advance(ring, p);
    }
  }
}

__global__ void __launch_bounds__(WORKER_THREADS, 1)
    weight_stream_kernel(const MegakernelArgs args, WeightStreamMode mode,
                         float expected_row_sum) {
  extern __shared__ __align__(128) uint8_t smem[];
  const Ring ring = setup_ring(args, smem);
  if (threadIdx.x / 32 == PRODUCER_WARP) {
    if (int(threadIdx.x % 32) < PRODUCER_LANES) {
      if (mode == WeightStreamMode::kProductsOnly) {
        run_copyless_producer(args, ring);
      } else {
        run_producer(args, ring);
      }
    }
    return;
  }
  TaskEnv env = consumer_env(args, ring, smem);
  const uint32_t q_begin = args.queue_begin[blockIdx.x], q_end = args.queue_begin[blockIdx.x + 1];
  for (uint32_t q = q_begin; q < q_end; ++q) {
    if (q > q_begin) env.ring.task_finished();  // the producer holds the next task's weights
    env.ring.input_loaded();  // its input (ones, below) needs no loads
    const abi::TensorRef& w = args.entries[q].task.refs[2];
    float* xs = env.scratch;
    float* acc = xs + linear_x_floats(w.cols);
    if (mode == WeightStreamMode::kCopiesOnly) {
      const int32_t chunks = plan_chunks(w).num_chunks;
      for (int32_t c = 0; c < chunks; ++c) {
        if (env.ring.wait(args, 0, 0) == nullptr) return;
        env.ring.release();
      }
      continue;
    }
    for (int i = env.tid; i < w.cols; i += CONSUMER_THREADS) xs[i] = 1.0f;
    consumer_sync();
    // The product loop the bf16 decode kernel runs (bf16 weights, one input row).
    if (!stream_matvec<KernelPaths::kBf16Decode>(env, w, xs, acc, acc + w.rows)) return;
    if (mode == WeightStreamMode::kProductsOnly) continue;  // the stages hold no weights
    for (int o = env.tid; o < w.rows; o += CONSUMER_THREADS) {
      if (fabsf(acc[o] - expected_row_sum) > 1e-3f * fabsf(expected_row_sum)) {
        atomicAdd(reinterpret_cast<unsigned long long*>(args.counters), 1ull);
      }
    }
  }
}

}  // namespace

cudaError_t launch_weight_stream(const MegakernelArgs& args, WeightStreamMode mode,
                                 float expected_row_sum, int workers, cudaStream_t stream) {
  const size_t smem = megakernel_smem_bytes(args.scratch_floats, args.num_stages);
  cudaError_t e = cudaFuncSetAttribute(weight_stream_kernel,
                                       cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem));
  if (e != cudaSuccess) return e;
  weight_stream_kernel<<<workers, WORKER_THREADS, smem, stream>>>(args, mode, expected_row_sum);
  return cudaGetLastError();
}

}  // namespace megalith::kernels
