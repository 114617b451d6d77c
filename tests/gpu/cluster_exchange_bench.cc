// What a phase boundary costs inside a thread block cluster against over the whole GPU
// (docs/performance.md, forty-eighth session): for clusters of 1, 2, 4, 8 and 16 CTAs (one per
// SM, as many clusters as run at once), the microseconds a round of each exchange of
// kernels/probe/cluster_exchange.h takes, with 8 and 32 floats a CTA. A cluster of one CTA with
// kGlobalLeaders is the megakernel's boundary with the scheme's two cluster barriers added (the
// boundary alone: megalith_gpu_event_latency). The loaded values are checked; a wrong one, or a
// wait given up, fails the run.
//
//   megalith_gpu_cluster_exchange [--rounds N]
#include <cuda_runtime.h>
#include <fmt/format.h>

#include <algorithm>

#include "check_cuda.h"
#include "probe_driver.h"
#include "probe/cluster_exchange.h"

namespace {

using namespace megalith::kernels;

const char* scheme_name(ClusterExchange s) {
  switch (s) {
    case ClusterExchange::kSharedMemory: return "the cluster's vector, stores to peers' shared memory";
    case ClusterExchange::kGlobalCluster: return "the cluster's vector, through global memory";
    case ClusterExchange::kGlobalLeaders: return "the whole vector, a counter of clusters";
  }
  return "?";
}

int run(int argc, char** argv) {
  int rounds = 0;
  if (!parse_rounds(argc, argv, "megalith_gpu_cluster_exchange", &rounds)) return 2;
  int sms = 0;
  CHECK_CUDA(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  float* vectors = nullptr;
  uint64_t* counter = nullptr;
  uint32_t* errors = nullptr;
  CHECK_CUDA(cudaMalloc(&vectors, size_t(2) * size_t(sms) * CLUSTER_EXCHANGE_MAX_FLOATS * sizeof(float)));
  CHECK_CUDA(cudaMalloc(&counter, sizeof(uint64_t)));
  CHECK_CUDA(cudaMalloc(&errors, 4));
  CHECK_CUDA(cudaMemset(errors, 0, 4));
  fmt::print("{} rounds a launch; us a round (the best of 3 launches after a warm-up)\n", rounds);
  fmt::print("  {:>7} {:>8} {:>5} {:>12} {:>9}  {}\n", "cluster", "clusters", "CTAs", "floats a CTA",
             "us", "exchange");
  constexpr ClusterExchange kSchemes[] = {ClusterExchange::kSharedMemory,
                                          ClusterExchange::kGlobalCluster,
                                          ClusterExchange::kGlobalLeaders};
  for (const int cluster : {1, 2, 4, 8, 16}) {
    for (const int floats : {8, 32}) {
      for (const ClusterExchange scheme : kSchemes) {
        if (cluster == 1 && scheme != ClusterExchange::kGlobalLeaders) continue;  // nothing to share
        int clusters = 0;
        const cudaError_t e = cluster_exchange_max_clusters(cluster, floats, scheme, &clusters);
        if (e != cudaSuccess || clusters < 1) {
          fmt::print("  {:>7} {:>8} {:>5} {:>12} {:>9}  {} ({})\n", cluster, "-", "-", floats,
                     "-", scheme_name(scheme),
                     e != cudaSuccess ? cudaGetErrorString(e) : "no cluster fits");
          (void)cudaGetLastError();
          continue;
        }
        clusters = std::min(clusters, sms / cluster);
        const ClusterExchangeArgs args{vectors, counter, errors, rounds, floats, scheme};
        float best = 0;
        if (best_of_launches([&] { return cudaMemset(counter, 0, sizeof(uint64_t)); },
                             [&] { return launch_cluster_exchange(args, cluster, clusters, nullptr); },
                             &best) != 0) {
          return 1;
        }
        fmt::print("  {:>7} {:>8} {:>5} {:>12} {:>9.3f}  {}\n", cluster, clusters,
                   cluster * clusters, floats, double(best) * 1e3 / rounds, scheme_name(scheme));
      }
    }
  }
  return errors_verdict(errors);
}

}  // namespace

int main(int argc, char** argv) { return run(argc, argv); }
