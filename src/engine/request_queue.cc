#include "megalith/engine/request_queue.h"

#include <memory>
#include <utility>

namespace megalith {

namespace {
Status shutting_down() { return {StatusCode::kUnavailable, "the server is shutting down"}; }
}  // namespace

RequestQueue::RequestQueue(GenerateFn generate)
    : generate_(std::move(generate)), worker_([this] { work_one_at_a_time(); }) {}

RequestQueue::RequestQueue(Executor& exec)
    : batch_(std::in_place, exec), worker_([this] { work_batched(); }) {}

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

bool RequestQueue::next(Request& request, bool idle) {
  std::unique_lock lock(mutex_);
  if (idle) ready_.wait(lock, [this] { return closed_ || !waiting_.empty(); });
  if (waiting_.empty()) return false;
  request = std::move(waiting_.front());
  waiting_.pop_front();
  return true;
}

bool RequestQueue::prepare(Request& request) {
  GenerationOptions& options = request.options;
  if (options.should_stop && options.should_stop()) {
    request.on_done(Status{StatusCode::kCancelled, "the request was cancelled"});
    return false;
  }
  // Set once shutdown() has ended the request: what it made is not a finished answer.
  auto cut = std::make_shared<bool>(false);
  options.should_stop = [this, cut, caller = std::move(options.should_stop)] {
    if (stop_running_.load()) *cut = true;
    return *cut || (caller && caller());
  };
  request.on_done = [cut, done = std::move(request.on_done)](StatusOr<GenerationResult> r) {
    done(*cut && r.ok() ? StatusOr<GenerationResult>(shutting_down()) : std::move(r));
  };
  return true;
}

void RequestQueue::work_one_at_a_time() {
  Request request;
  while (next(request, /*idle=*/true)) {
    if (!prepare(request)) continue;
    request.on_done(generate_(request.prompt, request.options, request.sampling));
  }
}

void RequestQueue::work_batched() {
  while (true) {
    Request request;
    while (batch_->free_slots() > 0 && next(request, /*idle=*/!batch_->busy())) {
      if (prepare(request)) batch_->add(std::move(request));
      request = {};
    }
    if (!batch_->busy()) {
      std::lock_guard lock(mutex_);
      if (closed_ && waiting_.empty()) return;
      continue;
    }
    // An executor error has answered the running requests; later ones get it from add().
    (void)batch_->run_launch();
  }
}

}  // namespace megalith
