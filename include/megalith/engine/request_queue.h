// One engine worker for many callers: generation requests go to a single thread that owns the
// model. Over an executor they are batched (BatchGenerator): a request takes a free slot at
// the next launch boundary and runs alongside the others, each getting the tokens it would get
// alone. Through a plain generate function (the reference model) they run one at a time, in
// arrival order.
//
//   RequestQueue queue(*exec);   // continuous batching over exec's slots
//   queue.submit({.prompt = ids, .options = {.max_new_tokens = 16},
//                 .on_done = [](StatusOr<GenerationResult> r) { /* on the worker thread */ }});
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "megalith/core/status.h"
#include "megalith/engine/batch_generator.h"
#include "megalith/engine/generation.h"
#include "megalith/runtime/executor.h"

namespace megalith {

class RequestQueue {
 public:
  using GenerateFn = std::function<StatusOr<GenerationResult>(std::span<const int32_t> prompt,
                                                              const GenerationOptions& options,
                                                              const SamplingParams& sampling)>;

  // on_token runs on the worker thread. should_stop is also asked before the request starts:
  // a request whose caller went away while it waited is dropped. on_done is called exactly
  // once: on the worker thread, or on shutdown()'s for a request still waiting, or in submit()
  // after shutdown().
  using Request = GenerationRequest;

  explicit RequestQueue(GenerateFn generate);  // one request at a time
  explicit RequestQueue(Executor& exec);       // batched over its slots; it must outlive the queue
  ~RequestQueue();  // shutdown()
  RequestQueue(const RequestQueue&) = delete;
  RequestQueue& operator=(const RequestQueue&) = delete;

  void submit(Request request);

  // Ends the worker: the running requests are asked to stop and, once they have, fail with
  // kUnavailable like the waiting and later ones (a cut answer is not reported as finished).
  // Returns when the worker is gone.
  void shutdown();

 private:
  void work_one_at_a_time();
  void work_batched();
  // Takes the next waiting request (false once closed and empty; waits while `idle`).
  bool next(Request& request, bool idle);
  // The request as it should run: dropped (false) when its caller left while it waited; else
  // stopped, and answered kUnavailable, by shutdown().
  bool prepare(Request& request);

  GenerateFn generate_;
  std::optional<BatchGenerator> batch_;
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<Request> waiting_;
  bool closed_ = false;                    // guarded by mutex_
  std::atomic<bool> stop_running_{false};  // read by the running requests' should_stop
  std::thread worker_;
};

}  // namespace megalith
