#include "megalith/runtime/cpu_executor.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>
#include <random>
#include <thread>

#include "mpsc_ring.h"
#include "task_context.h"

namespace megalith {

using cpu::MpscRing;

std::string_view scheduling_mode_name(SchedulingMode m) {
  return m == SchedulingMode::kStatic ? "static" : "dynamic";
}

// Event counters, join counters and queues: the state the GPU keeps in global memory. It
// persists across launches, because counters only grow.
struct CpuExecutor::Runtime {
  Runtime(const TaskGraph& tg, int32_t schedulers)
      : counters(new std::atomic<uint64_t>[tg.events.size()]),
        joins(new std::atomic<uint64_t>[tg.tasks.size()]),
        done(new std::atomic<uint64_t>[tg.tasks.size()]) {
    for (size_t e = 0; e < tg.events.size(); ++e) counters[e].store(0);
    for (size_t t = 0; t < tg.tasks.size(); ++t) {
      // Waits on the previous step are satisfied for the first step.
      uint64_t previous_step_waits = 0;
      for (uint32_t w = 0; w < tg.tasks[t].wait_count; ++w) {
        previous_step_waits += tg.waits[tg.tasks[t].wait_begin + w].step_offset;
      }
      joins[t].store(previous_step_waits);
      done[t].store(0);
    }
    for (int32_t w = 0; w < tg.num_workers; ++w) {
      worker_queues.push_back(std::make_unique<MpscRing>(2 * tg.tasks.size() + 16));
    }
    for (int32_t s = 0; s < schedulers; ++s) {
      scheduler_queues.push_back(std::make_unique<MpscRing>(4 * tg.events.size() + 16));
    }
  }

  std::unique_ptr<std::atomic<uint64_t>[]> counters, joins, done;
  std::vector<std::unique_ptr<MpscRing>> worker_queues, scheduler_queues;
  std::atomic<uint64_t> completed{0};
  std::atomic<bool> abort{false};
};

namespace {

constexpr uint64_t entry(uint32_t task, int64_t step) { return uint64_t(step) << 32 | task; }

// One launch: the worker (and scheduler) threads for steps [first, end).
class Launch {
 public:
  Launch(const TaskGraph& tg, const CpuExecutorOptions& options, uint8_t* const* buffers,
         std::atomic<uint64_t>* counters, std::atomic<uint64_t>* joins,
         std::atomic<uint64_t>* done, std::vector<std::unique_ptr<MpscRing>>& worker_queues,
         std::vector<std::unique_ptr<MpscRing>>& scheduler_queues, std::atomic<uint64_t>& completed,
         std::atomic<bool>& abort, int64_t first, int64_t end)
      : tg_(tg), opts_(options), buffers_(buffers), counters_(counters), joins_(joins),
        done_(done), worker_queues_(worker_queues), scheduler_queues_(scheduler_queues),
        completed_(completed), abort_(abort), first_(first), end_(end),
        target_(completed.load() + uint64_t(end - first) * tg.tasks.size()),
        threads_(options.threads > 0 ? std::min(options.threads, tg.num_workers)
                                     : std::min<int32_t>(tg.num_workers,
                                                         std::max(2u, std::thread::hardware_concurrency()))) {}

  Status run() {
    std::vector<std::thread> threads;
    const bool dynamic = opts_.mode == SchedulingMode::kDynamic;
    if (dynamic) seed_ready_tasks();
    for (int32_t i = 0; i < threads_; ++i) {
      threads.emplace_back([this, i, dynamic] { dynamic ? dynamic_workers(i) : static_workers(i); });
    }
    if (dynamic) {
      for (size_t s = 0; s < scheduler_queues_.size(); ++s) {
        threads.emplace_back([this, s] { scheduler(s); });
      }
    }
    Status status = watchdog();
    for (std::thread& t : threads) t.join();
    return status;
  }

 private:
  uint64_t step_target(uint32_t event, int64_t step, uint32_t offset) const {
    return uint64_t(tg_.events[event].triggers) * uint64_t(step + 1 - offset);
  }
  bool finished() const {
    return completed_.load(std::memory_order_acquire) >= target_ || abort_.load(std::memory_order_relaxed);
  }

  // Acquires every event task `t` waits on at `step`; false when the launch is aborted.
  bool wait_events(uint32_t t, int64_t step) {
    const abi::TaskDesc& d = tg_.tasks[t];
    for (uint32_t i = 0; i < d.wait_count; ++i) {
      const abi::EventWait& w = tg_.waits[d.wait_begin + i];
      const uint64_t target = step_target(w.event, step, w.step_offset);
      for (uint32_t spins = 0; counters_[w.event].load(std::memory_order_acquire) < target; ++spins) {
        if ((spins & 255) == 255) {
          if (abort_.load(std::memory_order_relaxed)) return false;
          std::this_thread::yield();
        }
      }
    }
    return true;
  }

  void maybe_delay(std::mt19937_64& rng) const {
    if (opts_.shuffle_seed == 0) return;
    const uint64_t r = rng();
    if (r % 4 == 0) std::this_thread::yield();
    if (r % 16 == 1) std::this_thread::sleep_for(std::chrono::microseconds(r % 50));
    for (uint64_t spin = 0, n = (r >> 8) % 2000; spin < n; ++spin) {
      std::atomic_signal_fence(std::memory_order_seq_cst);
    }
  }

  void execute(uint32_t t, int64_t step) {
    if (t == tg_.source_task && opts_.poison_each_step) poison_activations();
    if (std::find(opts_.slow_tasks.begin(), opts_.slow_tasks.end(), t) != opts_.slow_tasks.end()) {
      std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(opts_.slow_task_ms));
    }
    const cpu::TaskContext ctx{step, buffers_};
    cpu::run_task(ctx, tg_.tasks[t]);
    done_[t].fetch_add(1, std::memory_order_relaxed);
    for (const uint32_t e : {tg_.tasks[t].signal, tg_.tasks[t].second_signal}) {
      if (e == abi::kNoEvent) continue;
      const uint64_t now = counters_[e].fetch_add(1, std::memory_order_acq_rel) + 1;
      if (opts_.mode == SchedulingMode::kDynamic && now == step_target(e, step, 0)) {
        scheduler_queues_[e % scheduler_queues_.size()]->push(entry(e, step));
      }
    }
    completed_.fetch_add(1, std::memory_order_release);
  }

  void poison_activations() const {
    for (size_t b = 0; b < tg_.buffers.size(); ++b) {
      if (tg_.buffers[b].kind == BufferKind::kActivation) {
        std::memset(buffers_[b], 0xff, tg_.buffers[b].bytes);
      }
    }
  }

  // Whether every event task `t` waits on is satisfied at `step` (acquire).
  bool events_ready(uint32_t t, int64_t step) const {
    const abi::TaskDesc& d = tg_.tasks[t];
    for (uint32_t i = 0; i < d.wait_count; ++i) {
      const abi::EventWait& w = tg_.waits[d.wait_begin + i];
      if (counters_[w.event].load(std::memory_order_acquire) < step_target(w.event, step, w.step_offset)) {
        return false;
      }
    }
    return true;
  }

  // Thread `i` plays workers i, i + threads, ...: it runs the head of any of their queues whose
  // events are ready. The earliest unfinished task is always at the head of its queue with its
  // events ready, so this never deadlocks however few threads there are.
  void static_workers(int32_t i) {
    std::mt19937_64 rng(opts_.shuffle_seed * 1000003 + uint64_t(i));
    struct Cursor {
      int32_t worker;
      int64_t step;
      size_t next;
    };
    std::vector<Cursor> cursors;
    for (int32_t w = i; w < tg_.num_workers; w += threads_) {
      if (!tg_.queue(w).empty()) cursors.push_back({w, first_, 0});
    }
    size_t active = cursors.size();
    for (uint32_t idle = 0; active > 0;) {
      bool progressed = false;
      for (Cursor& c : cursors) {
        const auto queue = tg_.queue(c.worker);
        while (c.step < end_ && events_ready(queue[c.next], c.step)) {
          maybe_delay(rng);
          execute(queue[c.next], c.step);
          progressed = true;
          if (++c.next == queue.size()) {
            c.next = 0;
            if (++c.step == end_) --active;
          }
        }
      }
      if (!progressed && ++idle % 64 == 0) {
        if (abort_.load(std::memory_order_relaxed)) return;
        std::this_thread::yield();
      }
    }
  }

  void dispatch(uint32_t t, int64_t step, std::mt19937_64* rng) {
    const uint32_t w = rng ? uint32_t((*rng)() % uint64_t(tg_.num_workers)) : tg_.tasks[t].worker;
    worker_queues_[w]->push(entry(t, step));
  }

  // Tasks whose every wait is satisfied for the launch's first step (the source).
  void seed_ready_tasks() {
    for (uint32_t t = 0; t < tg_.tasks.size(); ++t) {
      const uint64_t need = uint64_t(tg_.tasks[t].wait_count) * uint64_t(first_ + 1);
      if (joins_[t].load(std::memory_order_acquire) == need) dispatch(t, first_, nullptr);
    }
  }

  void scheduler(size_t s) {
    std::mt19937_64 rng(opts_.shuffle_seed * 7919 + s);
    std::mt19937_64* random = opts_.shuffle_seed ? &rng : nullptr;
    MpscRing& queue = *scheduler_queues_[s];
    uint64_t value = 0;
    for (uint32_t idle = 0; !finished();) {
      if (!queue.try_pop(value)) {
        if (++idle % 64 == 0) std::this_thread::yield();
        continue;
      }
      const uint32_t e = uint32_t(value);
      const int64_t step = int64_t(value >> 32);
      const abi::EventDesc& ev = tg_.events[e];
      for (uint32_t i = 0; i < ev.consumer_count; ++i) {
        const abi::EventConsumer& c = tg_.consumers[ev.consumer_begin + i];
        const int64_t consumer_step = step + c.step_offset;
        const uint64_t need = uint64_t(tg_.tasks[c.task].wait_count) * uint64_t(consumer_step + 1);
        const uint64_t joined = joins_[c.task].fetch_add(1, std::memory_order_acq_rel) + 1;
        if (joined == need && consumer_step < end_) dispatch(c.task, consumer_step, random);
      }
    }
  }

  // Thread `i` takes tasks from the queues of workers i, i + threads, ... in turn. A task is
  // queued only once all its events fired, so waiting on them is only the acquire.
  void dynamic_workers(int32_t i) {
    std::mt19937_64 rng(opts_.shuffle_seed * 1000003 + uint64_t(i));
    uint64_t value = 0;
    for (uint32_t idle = 0; !finished();) {
      bool progressed = false;
      for (int32_t w = i; w < tg_.num_workers; w += threads_) {
        if (!worker_queues_[size_t(w)]->try_pop(value)) continue;
        const uint32_t t = uint32_t(value);
        const int64_t step = int64_t(value >> 32);
        if (!wait_events(t, step)) return;
        maybe_delay(rng);
        execute(t, step);
        progressed = true;
      }
      if (!progressed && ++idle % 64 == 0) std::this_thread::yield();
    }
  }

  // Waits for the launch to finish; a launch that makes no progress for the timeout is
  // aborted and reported with the task it is stuck on.
  Status watchdog() {
    using clock = std::chrono::steady_clock;
    uint64_t last = completed_.load();
    auto last_progress = clock::now();
    while (completed_.load(std::memory_order_acquire) < target_) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      const uint64_t now = completed_.load();
      if (now != last) {
        last = now;
        last_progress = clock::now();
      } else if (std::chrono::duration<double>(clock::now() - last_progress).count() >
                 opts_.deadlock_timeout_s) {
        abort_.store(true);
        return stuck_report();
      }
    }
    return {};
  }

  Status stuck_report() const {
    // The earliest unfinished (step, task): everything it waits for comes before it.
    uint32_t stuck = 0;
    int64_t stuck_step = std::numeric_limits<int64_t>::max();
    for (uint32_t t = 0; t < tg_.tasks.size(); ++t) {
      const int64_t step = int64_t(done_[t].load());  // each task runs once per step from 0
      if (step < end_ && step < stuck_step) {
        stuck_step = step;
        stuck = t;
      }
    }
    const abi::TaskDesc& d = tg_.tasks[stuck];
    const std::string task = fmt::format("task {} ({} of '{}')", stuck, task_kind_name(d.kind),
                                         tg_.ops[d.op].name);
    for (uint32_t i = 0; i < d.wait_count; ++i) {
      const abi::EventWait& w = tg_.waits[d.wait_begin + i];
      const uint64_t target = step_target(w.event, stuck_step, w.step_offset);
      const uint64_t counter = counters_[w.event].load();
      if (counter < target) {
        return {StatusCode::kInternal,
                fmt::format("deadlock: no progress for {:.0f} s; worker {} is stuck on {} at step "
                            "{}, waiting for event {}: counter {} of {} ({} signals per step)",
                            opts_.deadlock_timeout_s, d.worker, task, stuck_step, w.event,
                            counter, target, tg_.events[w.event].triggers)};
      }
    }
    return {StatusCode::kInternal,
            fmt::format("deadlock: no progress for {:.0f} s; {} at step {} has its events but was "
                        "never run (join counter {})", opts_.deadlock_timeout_s, task, stuck_step,
                        joins_[stuck].load())};
  }
  const TaskGraph& tg_;
  const CpuExecutorOptions& opts_;
  uint8_t* const* buffers_;
  std::atomic<uint64_t>* counters_;
  std::atomic<uint64_t>* joins_;
  std::atomic<uint64_t>* done_;
  std::vector<std::unique_ptr<MpscRing>>& worker_queues_;
  std::vector<std::unique_ptr<MpscRing>>& scheduler_queues_;
  std::atomic<uint64_t>& completed_;
  std::atomic<bool>& abort_;
  const int64_t first_, end_;
  const uint64_t target_;
  const int32_t threads_;
};

}  // namespace

CpuExecutor::CpuExecutor(const TaskGraph& tg, const CpuExecutorOptions& options)
    : tg_(tg), options_(options) {}

CpuExecutor::~CpuExecutor() = default;

StatusOr<std::unique_ptr<CpuExecutor>> CpuExecutor::create(const TaskGraph& tg,
                                                           const Checkpoint& ckpt,
                                                           const CpuExecutorOptions& options) {
  if (options.scheduler_threads < 1 || options.scheduler_threads > 64) {
    return invalid_argument("scheduler threads must be between 1 and 64, got {}",
                            options.scheduler_threads);
  }
  if (!(options.deadlock_timeout_s > 0)) return invalid_argument("the deadlock timeout must be positive");
  if (tg.vocab_size != ckpt.config().vocab_size) {
    return invalid_argument("the task graph was compiled for a vocabulary of {}, the checkpoint "
                            "has {}", tg.vocab_size, ckpt.config().vocab_size);
  }
  std::unique_ptr<CpuExecutor> exec(new CpuExecutor(tg, options));
  MEGALITH_RETURN_IF_ERROR(exec->bind(ckpt));
  exec->runtime_ = std::make_unique<Runtime>(exec->tg_, options.scheduler_threads);
  exec->init_slots();
  return exec;
}

Status CpuExecutor::bind(const Checkpoint& ckpt) {
  owned_.resize(tg_.buffers.size());
  base_.resize(tg_.buffers.size());
  for (size_t b = 0; b < tg_.buffers.size(); ++b) {
    const BufferDesc& desc = tg_.buffers[b];
    if (desc.kind == BufferKind::kWeight) {
      MEGALITH_ASSIGN_OR_RETURN(const TensorView w, checkpoint_weight(ckpt, desc));
      base_[b] = static_cast<uint8_t*>(const_cast<void*>(w.data));
      continue;
    }
    // Activations start as NaN (all ones), so a read before its write shows.
    const uint8_t fill = desc.kind == BufferKind::kActivation ? 0xff : 0;
    owned_[b].assign(std::max<uint64_t>(desc.bytes, 1), fill);
    if (desc.kind == BufferKind::kConstant) {
      std::copy(desc.data.begin(), desc.data.end(), owned_[b].begin());
    }
    base_[b] = owned_[b].data();
  }
  return check_io_buffers(tg_);
}

Status CpuExecutor::launch(std::span<const abi::StepControl> controls,
                           std::span<const int32_t> prompts, int64_t first_step, int64_t steps,
                           int64_t) {
  std::memcpy(io_buffer("control"), controls.data(), controls.size_bytes());
  std::memcpy(io_buffer("prompt"), prompts.data(), prompts.size_bytes());
  Launch launch(tg_, options_, base_.data(), runtime_->counters.get(), runtime_->joins.get(),
                runtime_->done.get(), runtime_->worker_queues, runtime_->scheduler_queues,
                runtime_->completed, runtime_->abort, first_step, first_step + steps);
  return launch.run();
}

const int32_t* CpuExecutor::tokens_row(int32_t slot) const {
  return reinterpret_cast<const int32_t*>(io_buffer("tokens")) + int64_t(slot) * tg_.max_seq_len;
}

const float* CpuExecutor::logprobs_row(int32_t slot) const {
  return reinterpret_cast<const float*>(io_buffer("logprobs")) + int64_t(slot) * tg_.max_seq_len;
}

const float* CpuExecutor::logits_row(int32_t slot) const {
  return reinterpret_cast<const float*>(io_buffer("logits")) + int64_t(slot) * tg_.vocab_size;
}

}  // namespace megalith
