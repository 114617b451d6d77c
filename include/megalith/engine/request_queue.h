// One engine worker for many callers: generation requests run one at a time, in the order they
// arrive, on a single thread that owns the model.
//
// megalith's engine is batch 1: a compiled task graph decodes one sequence, so concurrent
// requests wait here for their turn. Serving them together (continuous batching) needs a task
// graph compiled for batch > 1, which the compiler does not build yet; this queue is then where
// requests would be grouped into batches.
//
//   RequestQueue queue([&](auto prompt, const auto& options, const auto& sampling) {
//     return generate(*exec, prompt, options, sampling);
//   });
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
#include "megalith/engine/generation.h"

namespace megalith {

class RequestQueue {
 public:
  using GenerateFn = std::function<StatusOr<GenerationResult>(std::span<const int32_t> prompt,
                                                              const GenerationOptions& options,
                                                              const SamplingParams& sampling)>;

  struct Request {
    std::vector<int32_t> prompt;
    // on_token runs on the worker thread. should_stop is also asked before the request starts:
    // a request whose caller went away while it waited is dropped.
    GenerationOptions options;
    SamplingParams sampling;
    // Called exactly once, on the worker thread (or in submit() after shutdown()).
    std::function<void(StatusOr<GenerationResult>)> on_done;
  };

  explicit RequestQueue(GenerateFn generate);
  ~RequestQueue();  // shutdown()
  RequestQueue(const RequestQueue&) = delete;
  RequestQueue& operator=(const RequestQueue&) = delete;

  void submit(Request request);

  // Ends the worker: the running request is asked to stop and, once it has, fails with
  // kUnavailable like the waiting and later ones (a cut answer is not reported as finished).
  // Returns when the worker is gone.
  void shutdown();

 private:
  void work();

  GenerateFn generate_;
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<Request> waiting_;
  bool closed_ = false;                    // guarded by mutex_
  std::atomic<bool> stop_running_{false};  // read by the running request's should_stop
  std::thread worker_;
};

}  // namespace megalith
