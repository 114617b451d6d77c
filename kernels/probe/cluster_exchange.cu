#include "probe/cluster_exchange.h"

#include <cooperative_groups.h>

#include <algorithm>

#include "probe/probe_common.cuh"

namespace megalith::kernels {

namespace {

namespace cg = cooperative_groups;

constexpr int kThreads = 256;

#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 900  // the kernel's helpers: sm_90 only

constexpr int kLoadsInFlight = 4;  // 16-byte loads per thread, as a task's load_row

// `count` floats (a multiple of 4) from global `src` into shared `row`.
__device__ void load_vector(const float* src, int count, float* row) {
  float4* row4 = reinterpret_cast<float4*>(row);
  load_vectors<kThreads, kLoadsInFlight>(reinterpret_cast<const float4*>(src), count / 4,
                                         [&](int k, const float4& v) { row4[k] = v; });
}

#endif

__global__ void __launch_bounds__(kThreads, 1) cluster_exchange_kernel(const ClusterExchangeArgs args) {
#if __CUDA_ARCH__ >= 900
  extern __shared__ __align__(16) float smem[];
  cg::cluster_group cluster = cg::this_cluster();
  const int size = int(cluster.num_blocks()), rank = int(cluster.block_rank());
  const int ctas = int(gridDim.x), cta = int(blockIdx.x), first = cta - rank;
  const int per = args.floats_per_cta, clusters = ctas / size;
  __shared__ uint32_t stuck;
  uint32_t wrong = 0;
  for (int r = 0; r < args.rounds; ++r) {
    // What the CTA holds in `row` this round: `checked` floats, CTA `check_first`'s share first.
    int check_first = first, checked = size * per;
    float* row = smem;
    if (args.scheme == ClusterExchange::kSharedMemory) {
      // Two buffers of the cluster's vector: a CTA writes round r + 1's into its peers' only
      // after the barrier of round r, which each peer reaches after reading round r - 1's.
      row = smem + (r % 2) * size * per;
      for (int k = int(threadIdx.x); k < size * per / 4; k += kThreads) {
        const int peer = k / (per / 4), i = 4 * (k % (per / 4));
        float* remote = cluster.map_shared_rank(row, peer) + rank * per + i;
        *reinterpret_cast<float4*>(remote) =
            make_float4(round_value(r, cta, i), round_value(r, cta, i + 1),
                        round_value(r, cta, i + 2), round_value(r, cta, i + 3));
      }
      cluster.sync();
    } else {
      float* vector = args.vectors + size_t(r % 2) * size_t(ctas) * size_t(per);
      for (int i = int(threadIdx.x); i < per; i += kThreads) vector[cta * per + i] = round_value(r, cta, i);
      cluster.sync();  // the cluster's stores before its peers' loads, or its leader's release
      if (args.scheme == ClusterExchange::kGlobalLeaders) {
        if (rank == 0 && threadIdx.x == 0) {
          stuck = signal_and_wait(args.counter, uint64_t(clusters) * uint64_t(r + 1)) ? 1u : 0u;
        }
        // The leader's acquire before every peer's loads; its verdict to the peers.
        cluster.sync();
        if (*cluster.map_shared_rank(&stuck, 0) != 0) {  // the same verdict in every peer
          if (threadIdx.x == 0) atomicAdd(args.errors, 1u);
          cluster.sync();  // the leader's `stuck` stays readable until every peer has read it
          return;
        }
        check_first = 0;
        checked = ctas * per;
      }
      load_vector(vector + size_t(check_first) * size_t(per), checked, row);
      __syncthreads();  // the row is the task's input from here on
    }
    const int k = (r * 131 + cta * 7 + int(threadIdx.x)) % checked;
    const int owner = check_first + k / per;
    wrong += row[k] != round_value(r, owner, k % per) ? 1u : 0u;
  }
  // No CTA leaves while a peer may still store into its shared memory or read its `stuck`.
  cluster.sync();
  if (wrong != 0) atomicAdd(args.errors, wrong);
#else
  __trap();  // no clusters: launch_cluster_exchange refuses such devices, and this build runs none
#endif
}

// More than half an SM's shared memory, so that no two CTAs share an SM (the kernel's registers
// would let three), as no two of the megakernel's workers do.
constexpr size_t kOneCtaAnSm = 120 << 10;

size_t exchange_smem(int cluster, int clusters, int floats_per_cta, ClusterExchange scheme) {
  const int floats = scheme == ClusterExchange::kSharedMemory ? 2 * cluster * floats_per_cta
                     : scheme == ClusterExchange::kGlobalCluster ? cluster * floats_per_cta
                                                                  : cluster * clusters * floats_per_cta;
  return std::max(size_t(floats) * sizeof(float), kOneCtaAnSm);
}

cudaLaunchConfig_t exchange_config(int cluster, int clusters, size_t smem, cudaStream_t stream,
                                   cudaLaunchAttribute* attribute) {
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(unsigned(cluster * clusters));
  config.blockDim = dim3(kThreads);
  config.dynamicSmemBytes = smem;
  config.stream = stream;
  attribute->id = cudaLaunchAttributeClusterDimension;
  attribute->val.clusterDim.x = unsigned(cluster);
  attribute->val.clusterDim.y = 1;
  attribute->val.clusterDim.z = 1;
  config.attrs = attribute;
  config.numAttrs = 1;
  return config;
}

// sm_90 and a build with its code; the kernel's attributes for `smem` bytes and `cluster` CTAs.
cudaError_t prepare_kernel(int cluster, size_t smem) {
  int device = 0, major = 0;
  cudaError_t e = cudaGetDevice(&device);
  if (e == cudaSuccess) e = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
  if (e != cudaSuccess) return e;
  cudaFuncAttributes built{};
  e = cudaFuncGetAttributes(&built, cluster_exchange_kernel);
  if (e != cudaSuccess) return e;
  if (major < 9 || built.ptxVersion < 90) return cudaErrorNotSupported;
  e = cudaFuncSetAttribute(cluster_exchange_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                           int(smem));
  if (e == cudaSuccess && cluster > 8) {
    e = cudaFuncSetAttribute(cluster_exchange_kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1);
  }
  return e;
}

bool valid_shape(int cluster, int floats_per_cta) {
  return cluster >= 1 && cluster <= CLUSTER_EXCHANGE_MAX_CLUSTER && floats_per_cta >= 4 &&
         floats_per_cta <= CLUSTER_EXCHANGE_MAX_FLOATS && floats_per_cta % 4 == 0;
}

}  // namespace

cudaError_t cluster_exchange_max_clusters(int cluster, int floats_per_cta, ClusterExchange scheme,
                                          int* clusters) {
  if (!valid_shape(cluster, floats_per_cta) || clusters == nullptr) return cudaErrorInvalidValue;
  int device = 0, sms = 0;
  cudaError_t e = cudaGetDevice(&device);
  if (e == cudaSuccess) e = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  if (e != cudaSuccess) return e;
  // The largest grid's shared memory: a kGlobalLeaders row of every SM's share.
  const size_t smem = exchange_smem(cluster, sms / cluster, floats_per_cta, scheme);
  e = prepare_kernel(cluster, smem);
  if (e != cudaSuccess) return e;
  cudaLaunchAttribute attribute{};
  const cudaLaunchConfig_t config = exchange_config(cluster, 1, smem, nullptr, &attribute);
  return cudaOccupancyMaxActiveClusters(clusters, cluster_exchange_kernel, &config);
}

cudaError_t launch_cluster_exchange(const ClusterExchangeArgs& args, int cluster, int clusters,
                                    cudaStream_t stream) {
  if (!valid_shape(cluster, args.floats_per_cta) || clusters < 1 || args.rounds < 1 ||
      args.vectors == nullptr || args.errors == nullptr ||
      (args.scheme == ClusterExchange::kGlobalLeaders && args.counter == nullptr)) {
    return cudaErrorInvalidValue;
  }
  const size_t smem = exchange_smem(cluster, clusters, args.floats_per_cta, args.scheme);
  cudaError_t e = prepare_kernel(cluster, smem);
  if (e != cudaSuccess) return e;
  cudaLaunchAttribute attribute{};
  const cudaLaunchConfig_t config = exchange_config(cluster, clusters, smem, stream, &attribute);
  e = cudaLaunchKernelEx(&config, cluster_exchange_kernel, args);
  return e != cudaSuccess ? e : cudaGetLastError();
}

}  // namespace megalith::kernels
