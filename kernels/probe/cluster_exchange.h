// The host's entry point into the cluster-exchange probe (cluster_exchange.cu): what a phase
// boundary costs when it stays inside a thread block cluster (sm_90), against the megakernel's
// boundary over every SM (the event-latency probe, event_latency.h). Each round every CTA hands
// its share of a vector to the others and then holds the whole vector, in one of three ways:
// - kSharedMemory: it stores its share into every cluster peer's shared memory (distributed
//   shared memory) and the cluster barrier (release, acquire) ends the round: the vector is
//   then in its own shared memory;
// - kGlobalCluster: it stores its share to global memory, the cluster barrier, then it loads
//   the cluster's vector from global memory, as a task loads its input row;
// - kGlobalLeaders: it stores its share to global memory; after a cluster barrier, one thread
//   of each cluster releases a global counter for the whole cluster and waits with acquires
//   until every cluster has; after a second cluster barrier every CTA loads the whole grid's
//   vector: the megakernel's boundary with a counter of clusters instead of CTAs.
// The loaded values are checked (tests/gpu/cluster_exchange_bench.cc).
//
//   ClusterExchangeArgs a = {vectors, counter, errors, rounds, floats_per_cta, scheme};
//   megalith::kernels::launch_cluster_exchange(a, cluster, clusters, stream);
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace megalith::kernels {

enum class ClusterExchange : int32_t { kSharedMemory = 0, kGlobalCluster = 1, kGlobalLeaders = 2 };

constexpr int CLUSTER_EXCHANGE_MAX_FLOATS = 96;  // floats a CTA hands over a round
constexpr int CLUSTER_EXCHANGE_MAX_CLUSTER = 16;  // CTAs a cluster (16: a non-portable size)

struct ClusterExchangeArgs {
  float* vectors;     // two vectors of CTAs * floats_per_cta (rounds alternate)
  uint64_t* counter;  // one word, zero at launch (kGlobalLeaders)
  uint32_t* errors;   // one word, zero before the launch: values loaded wrong, waits given up
  int32_t rounds;
  int32_t floats_per_cta;  // a multiple of 4, 4 to CLUSTER_EXCHANGE_MAX_FLOATS
  ClusterExchange scheme;
};

// How many clusters of `cluster` CTAs (256 threads each) the device runs at once: a launch of
// more could not finish a kGlobalLeaders round, whose clusters wait for one another.
cudaError_t cluster_exchange_max_clusters(int cluster, int floats_per_cta, ClusterExchange scheme,
                                          int* clusters);

// `clusters` clusters of `cluster` CTAs run `rounds` rounds. cudaErrorNotSupported before sm_90.
cudaError_t launch_cluster_exchange(const ClusterExchangeArgs& args, int cluster, int clusters,
                                    cudaStream_t stream);

}  // namespace megalith::kernels
