// A bounded multi-producer, single-consumer ring of 64-bit entries on atomics: producers
// claim a slot with fetch_add and publish it with a release store of its sequence number;
// the consumer takes slots in order. It is the queue the scheduler and workers share, as in
// the megakernel. Internal to src/runtime/cpu.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

namespace megalith::cpu {

class MpscRing {
 public:
  // `capacity` must exceed the most entries ever outstanding; rounded up to a power of two.
  explicit MpscRing(uint64_t capacity) {
    size_ = 1;
    while (size_ < capacity) size_ <<= 1;
    slots_ = std::make_unique<Slot[]>(size_);
    for (uint64_t i = 0; i < size_; ++i) slots_[i].sequence.store(i, std::memory_order_relaxed);
  }

  void push(uint64_t value) {
    const uint64_t ticket = tail_.fetch_add(1, std::memory_order_relaxed);
    Slot& s = slots_[ticket & (size_ - 1)];
    // The consumer frees a slot by advancing its sequence a lap; capacity makes waiting rare.
    while (s.sequence.load(std::memory_order_acquire) != ticket) {
    }
    s.value = value;
    s.sequence.store(ticket + 1, std::memory_order_release);
  }

  // The next entry, if one is published.
  bool try_pop(uint64_t& value) {
    Slot& s = slots_[head_ & (size_ - 1)];
    if (s.sequence.load(std::memory_order_acquire) != head_ + 1) return false;
    value = s.value;
    s.sequence.store(head_ + size_, std::memory_order_release);
    ++head_;
    return true;
  }

  uint64_t approximate_size() const {
    return tail_.load(std::memory_order_relaxed) - head_seen_.load(std::memory_order_relaxed);
  }
  void publish_head() { head_seen_.store(head_, std::memory_order_relaxed); }

 private:
  struct Slot {
    std::atomic<uint64_t> sequence{0};
    uint64_t value = 0;
  };
  uint64_t size_ = 0;
  std::unique_ptr<Slot[]> slots_;
  alignas(64) std::atomic<uint64_t> tail_{0};
  alignas(64) uint64_t head_ = 0;  // consumer only
  std::atomic<uint64_t> head_seen_{0};
};

}  // namespace megalith::cpu
