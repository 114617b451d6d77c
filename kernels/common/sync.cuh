// Synchronization primitives of the megakernel: GPU-scope acquire/release on the event
// counters, the consumer warps' named barrier, the global timer, and the mbarrier and
// cp.async.bulk operations of the weight ring.
//
//   while (ld_acquire_gpu(counter) < target) {}   // then the producers' writes are visible
//   consumer_sync();                               // the consumer threads, not the producer
//   bulk_copy_g2s(stage, src, bytes, &full[s], l2_evict_first_policy());  // completes on the mbarrier
#pragma once

#include <stdint.h>

#include "megakernel/layout.h"

namespace megalith::kernels {

__device__ __forceinline__ uint64_t ld_acquire_gpu(const uint64_t* p) {
  uint64_t v;
  asm volatile("ld.acquire.gpu.global.u64 %0, [%1];" : "=l"(v) : "l"(p) : "memory");
  return v;
}

__device__ __forceinline__ void red_release_gpu_add(uint64_t* p, uint64_t v) {
  asm volatile("red.release.gpu.global.add.u64 [%0], %1;" ::"l"(p), "l"(v) : "memory");
}
// After fence_acq_rel_gpu(): a release pattern (a fence, then a strong write), so that several
// counters can be released with one fence.
__device__ __forceinline__ void red_relaxed_gpu_add(uint64_t* p, uint64_t v) {
  asm volatile("red.relaxed.gpu.global.add.u64 [%0], %1;" ::"l"(p), "l"(v) : "memory");
}

// Adds v with release semantics and returns the value before: the one that brings a counter
// to a target knows it did.
__device__ __forceinline__ uint64_t atom_add_release_gpu(uint64_t* p, uint64_t v) {
  uint64_t before;
  asm volatile("atom.release.gpu.global.add.u64 %0, [%1], %2;" : "=l"(before) : "l"(p), "l"(v) : "memory");
  return before;
}

__device__ __forceinline__ void st_release_gpu(uint64_t* p, uint64_t v) {
  asm volatile("st.release.gpu.global.u64 [%0], %1;" ::"l"(p), "l"(v) : "memory");
}

// Publishes to the host: every earlier write of this thread (to host-mapped memory too) is
// visible to a CPU that reads *p == v with acquire semantics.
__device__ __forceinline__ void st_release_sys(uint64_t* p, uint64_t v) {
  asm volatile("st.release.sys.global.u64 [%0], %1;" ::"l"(p), "l"(v) : "memory");
}

__device__ __forceinline__ uint32_t ld_relaxed_gpu(const uint32_t* p) {
  uint32_t v;
  asm volatile("ld.relaxed.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}
__device__ __forceinline__ uint64_t ld_relaxed_gpu(const uint64_t* p) {
  uint64_t v;
  asm volatile("ld.relaxed.gpu.global.u64 %0, [%1];" : "=l"(v) : "l"(p) : "memory");
  return v;
}
__device__ __forceinline__ void st_relaxed_gpu(uint64_t* p, uint64_t v) {
  asm volatile("st.relaxed.gpu.global.u64 [%0], %1;" ::"l"(p), "l"(v) : "memory");
}

// After a relaxed load saw a release's value: the acquire half, so that later loads see the
// releasing side's writes (a strong read followed by this fence is an acquire pattern).
__device__ __forceinline__ void fence_acq_rel_gpu() {
  asm volatile("fence.acq_rel.gpu;" ::: "memory");
}

// The SM this thread runs on (the trace records it: which SMs stream slower).
__device__ __forceinline__ uint32_t sm_id() {
  uint32_t id;
  asm volatile("mov.u32 %0, %%smid;" : "=r"(id));
  return id;
}

__device__ __forceinline__ uint64_t global_timer_ns() {
  uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

// The consumer warps' barrier. The producer warp never joins it, so a task can synchronize
// its threads while the producer is blocked on a free stage.
__device__ __forceinline__ void consumer_sync() {
  asm volatile("bar.sync 1, %0;" ::"n"(CONSUMER_THREADS) : "memory");
}

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return uint32_t(__cvta_generic_to_shared(p));
}

// The mbarrier operations exist on sm_80 too, in an older form (no tx counts, no sink
// operand, test_wait instead of try_wait); the sm_90 forms carry explicit CTA-scope release and
// acquire, which the sm_80 forms have by default.
__device__ __forceinline__ void mbarrier_init(uint64_t* bar, uint32_t count) {
  asm volatile("mbarrier.init.shared.b64 [%0], %1;" ::"r"(smem_addr(bar)), "r"(count) : "memory");
}

// Makes the initialized barriers visible to the async proxy (the bulk copies); sm_80's
// cp.async is not in that proxy, and the block barrier after the init suffices there.
__device__ __forceinline__ void fence_barrier_init() {
#if __CUDA_ARCH__ >= 900
  asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
#endif
}

__device__ __forceinline__ void mbarrier_arrive(uint64_t* bar) {
#if __CUDA_ARCH__ >= 900
  asm volatile("mbarrier.arrive.release.cta.shared::cta.b64 _, [%0];" ::"r"(smem_addr(bar))
               : "memory");
#else
  asm volatile(
      "{\n"
      ".reg .b64 state;\n"
      "mbarrier.arrive.shared.b64 state, [%0];\n"
      "}\n" ::"r"(smem_addr(bar))
      : "memory");
#endif
}

// One bounded wait for the phase of `parity` to complete; true when it has.
__device__ __forceinline__ bool mbarrier_try_wait(uint64_t* bar, uint32_t parity) {
  uint32_t done;
#if __CUDA_ARCH__ >= 900
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "mbarrier.try_wait.parity.acquire.cta.shared::cta.b64 p, [%1], %2;\n"
      "selp.u32 %0, 1, 0, p;\n"
      "}\n"
      : "=r"(done)
      : "r"(smem_addr(bar)), "r"(parity)
      : "memory");
#else
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "mbarrier.test_wait.parity.shared.b64 p, [%1], %2;\n"
      "selp.u32 %0, 1, 0, p;\n"
      "}\n"
      : "=r"(done)
      : "r"(smem_addr(bar)), "r"(parity)
      : "memory");
#endif
  return done != 0;
}

// An L2 cache policy that evicts the lines it tags first: weights stream through L2 once per
// step, and tagging them so keeps the KV cache, the activations and the norm weights (which
// the latency-bound tasks read) resident instead.
__device__ __forceinline__ uint64_t l2_evict_first_policy() {
  uint64_t policy;
  asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(policy));
  return policy;
}

// One 16-byte global -> shared copy (both addresses 16-byte aligned) that completes in the
// background; wait_async_copies() waits for all of this thread's.
__device__ __forceinline__ void copy16_async(void* dst, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(smem_addr(dst)), "l"(src) : "memory");
}
__device__ __forceinline__ void wait_async_copies() { asm volatile("cp.async.wait_all;" ::: "memory"); }
constexpr int L2_LINE = 128;
// Asks L2 for the 128-byte line holding `p`, without waiting for it (a hint: nothing is
// written, and a line already there costs nothing more).
__device__ __forceinline__ void prefetch_l2(const void* p) {
  asm volatile("prefetch.global.L2 [%0];" ::"l"(p));
}

#if __CUDA_ARCH__ >= 900
// Asks L2 for `bytes` (a multiple of 16) from `src` (16-byte aligned), without waiting.
__device__ __forceinline__ void bulk_prefetch_l2(const void* src, uint32_t bytes) {
  asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(src), "r"(bytes) : "memory");
}
// The same for the bytes from `begin` to `end` (both 16-byte aligned), as requests of
// L2_PREFETCH_PIECE.
__device__ __forceinline__ void bulk_prefetch_l2_range(uintptr_t begin, uintptr_t end) {
  for (uintptr_t at = begin; at < end; at += L2_PREFETCH_PIECE) {
    bulk_prefetch_l2(reinterpret_cast<const void*>(at),
                     uint32_t(min(uintptr_t(L2_PREFETCH_PIECE), end - at)));
  }
}
__device__ __forceinline__ void mbarrier_arrive_expect_tx(uint64_t* bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.release.cta.shared::cta.b64 _, [%0], %1;" ::"r"(
                   smem_addr(bar)),
               "r"(bytes)
               : "memory");
}

// Global -> shared bulk copy of `bytes` (a multiple of 16, both addresses 16-byte aligned),
// counted against the transaction bytes of `bar`, its L2 lines tagged with `policy`.
__device__ __forceinline__ void bulk_copy_g2s(void* dst, const void* src, uint32_t bytes,
                                              uint64_t* bar, uint64_t policy) {
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes.L2::cache_hint"
      " [%0], [%1], %2, [%3], %4;" ::"r"(smem_addr(dst)),
      "l"(src), "r"(bytes), "r"(smem_addr(bar)), "l"(policy)
      : "memory");
}
#else
// sm_80: one 16-byte global -> shared copy (cached in L2 only), its lines tagged with
// `policy`.
__device__ __forceinline__ void copy16_g2s(void* dst, const void* src, uint64_t policy) {
  asm volatile("cp.async.cg.shared.global.L2::cache_hint [%0], [%1], 16, %2;" ::"r"(smem_addr(dst)),
               "l"(src), "l"(policy)
               : "memory");
}

// sm_80: arrives on `bar` once this thread's earlier cp.async copies have landed; the arrival
// counts against the barrier's expected count.
__device__ __forceinline__ void copies_arrive(uint64_t* bar) {
  asm volatile("cp.async.mbarrier.arrive.noinc.shared.b64 [%0];" ::"r"(smem_addr(bar)) : "memory");
}
#endif

}  // namespace megalith::kernels
