#include "megalith/engine/request_queue.h"

#include <utility>

namespace megalith {

namespace {
Status shutting_down() { return {StatusCode::kUnavailable, "the server is shutting down"}; }
}  // namespace

RequestQueue::RequestQueue(GenerateFn generate)
    : generate_(std::move(generate)), worker_([this] { work(); }) {}

RequestQueue::~RequestQueue() { shutdown(); }

void RequestQueue::submit(Request request) {
  {
    std::lock_guard lock(mutex_);
    if (!closed_) {
      waiting_.push_back(std::move(request));
      ready_.notify_one();
      return;
    }
  }
  request.on_done(shutting_down());
}

void RequestQueue::shutdown() {
  std::deque<Request> dropped;
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
    dropped.swap(waiting_);
    ready_.notify_one();
  }
  stop_running_ = true;
  for (Request& r : dropped) r.on_done(shutting_down());
  if (worker_.joinable()) worker_.join();
}

void RequestQueue::work() {
  while (true) {
    Request request;
    {
      std::unique_lock lock(mutex_);
      ready_.wait(lock, [this] { return closed_ || !waiting_.empty(); });
      if (waiting_.empty()) return;  // closed
      request = std::move(waiting_.front());
      waiting_.pop_front();
    }
    GenerationOptions& options = request.options;
    if (options.should_stop && options.should_stop()) {
      request.on_done(Status{StatusCode::kCancelled, "the request was cancelled"});
      continue;
    }
    bool cut = false;  // shutdown() ended it: what it made is not a finished answer
    options.should_stop = [this, &cut, caller = std::move(options.should_stop)] {
      if (stop_running_.load()) cut = true;
      return cut || (caller && caller());
    };
    StatusOr<GenerationResult> result = generate_(request.prompt, options, request.sampling);
    if (cut && result.ok()) result = shutting_down();
    request.on_done(std::move(result));
  }
}

}  // namespace megalith
