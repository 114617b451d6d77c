// The engine worker of the server: requests run one at a time in arrival order, each caller gets
// its own result, and shutdown neither hangs nor loses a caller. Also GenerationOptions::
// should_stop, which lets a request end early on the reference model and the executor alike.
#include "megalith/engine/request_queue.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include "megalith/compiler/compiler.h"
#include "megalith/model/checkpoint.h"
#include "megalith/model/model_graph.h"
#include "megalith/model/random_checkpoint.h"
#include "megalith/runtime/cpu_executor.h"

namespace megalith {
namespace {

// A stand-in engine: "generates" the prompt back, one token per id, and records the order.
struct EchoEngine {
  std::mutex mutex;
  std::vector<int32_t> order;  // the first prompt id of each request run
  std::atomic<int> running{0};

  StatusOr<GenerationResult> operator()(std::span<const int32_t> prompt,
                                        const GenerationOptions& options, const SamplingParams&) {
    EXPECT_EQ(++running, 1) << "two requests ran at once";
    {
      std::lock_guard lock(mutex);
      order.push_back(prompt[0]);
    }
    GenerationResult r{{}, "length", 0, 0};
    for (int32_t id : prompt) {
      r.tokens.push_back(id);
      if (options.on_token) options.on_token(id);
      if (options.should_stop && options.should_stop()) {
        r.finish_reason = "stop";
        break;
      }
    }
    --running;
    return r;
  }
};

RequestQueue::GenerateFn engine_fn(EchoEngine& engine) {
  return [&engine](std::span<const int32_t> p, const GenerationOptions& o,
                   const SamplingParams& s) { return engine(p, o, s); };
}

// Submits `prompt` and returns a future of its result.
std::future<StatusOr<GenerationResult>> submit(RequestQueue& queue, std::vector<int32_t> prompt,
                                               std::function<bool()> should_stop = {}) {
  auto done = std::make_shared<std::promise<StatusOr<GenerationResult>>>();
  auto result = done->get_future();
  RequestQueue::Request request{std::move(prompt), {}, {}, {}};
  request.options.should_stop = std::move(should_stop);
  request.on_done = [done](StatusOr<GenerationResult> r) { done->set_value(std::move(r)); };
  queue.submit(std::move(request));
  return result;
}

TEST(RequestQueue, RunsRequestsOneAtATimeInArrivalOrderEachWithItsOwnResult) {
  EchoEngine engine;
  RequestQueue queue(engine_fn(engine));
  std::vector<std::future<StatusOr<GenerationResult>>> results;
  for (int32_t i = 0; i < 20; ++i) results.push_back(submit(queue, {i, i + 100, i + 200}));
  for (int32_t i = 0; i < 20; ++i) {
    StatusOr<GenerationResult> r = results[size_t(i)].get();
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->tokens, (std::vector<int32_t>{i, i + 100, i + 200}));
  }
  std::vector<int32_t> expected(20);
  for (int32_t i = 0; i < 20; ++i) expected[size_t(i)] = i;
  EXPECT_EQ(engine.order, expected);

  // Many submitting threads: still one at a time, every caller answered with its own tokens.
  std::vector<std::thread> callers;
  std::atomic<int> right{0};
  for (int32_t t = 0; t < 8; ++t) {
    callers.emplace_back([&, t] {
      for (int32_t k = 0; k < 10; ++k) {
        const std::vector<int32_t> prompt = {1000 * t + k, t, k};
        StatusOr<GenerationResult> r = submit(queue, prompt).get();
        if (r.ok() && r->tokens == prompt) ++right;
      }
    });
  }
  for (std::thread& t : callers) t.join();
  EXPECT_EQ(right, 80);
}

TEST(RequestQueue, DropsARequestWhoseCallerLeftAndStopsOnShutdown) {
  EchoEngine engine;
  RequestQueue queue(engine_fn(engine));
  StatusOr<GenerationResult> gone = submit(queue, {7, 8}, [] { return true; }).get();
  EXPECT_EQ(gone.status().code(), StatusCode::kCancelled);

  // A request that would run forever blocks the worker until shutdown asks it to stop; it
  // then fails (its answer was cut short), the one waiting behind it fails, and so does one
  // submitted after.
  std::promise<void> started;
  RequestQueue blocking([&](std::span<const int32_t>, const GenerationOptions& options,
                            const SamplingParams&) -> StatusOr<GenerationResult> {
    started.set_value();
    while (!options.should_stop()) std::this_thread::yield();
    return GenerationResult{{1}, "stop", 0, 0};
  });
  auto running = submit(blocking, {1});
  auto waiting = submit(blocking, {2});
  started.get_future().wait();
  blocking.shutdown();
  EXPECT_EQ(running.get().status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(waiting.get().status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(submit(blocking, {3}).get().status().code(), StatusCode::kUnavailable);
}

// should_stop ends generation after the token it was asked at, with finish_reason "stop", on
// the reference model and on the executor (whose launches run several steps at once).
TEST(GenerationShouldStop, EndsGenerationAtOnce) {
  const ModelConfig cfg = *preset_config(Architecture::kQwen3, "tiny");
  auto ckpt = random_checkpoint(cfg, 5);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().message();
  const std::vector<int32_t> prompt = {3, 1, 4};
  auto stop_after = [](int n, int* seen) {
    GenerationOptions o{20, {}};
    o.on_token = [seen](int32_t) { ++*seen; };
    o.should_stop = [seen, n] { return *seen == n; };
    return o;
  };
  int seen = 0;
  ReferenceModel reference(**ckpt);
  Sampler greedy(SamplingParams{});
  auto r = generate(reference, prompt, stop_after(3, &seen), greedy);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->tokens.size(), 3u);
  EXPECT_EQ(r->finish_reason, "stop");

  auto graph = build_decode_graph(cfg, 1, 32);
  ASSERT_TRUE(graph.ok());
  auto tg = compile(*graph, cfg, {.num_workers = 4});
  ASSERT_TRUE(tg.ok());
  auto exec = CpuExecutor::create(*tg, **ckpt, {});
  ASSERT_TRUE(exec.ok()) << exec.status().message();
  seen = 0;
  auto e = generate(**exec, prompt, stop_after(5, &seen), SamplingParams{});
  ASSERT_TRUE(e.ok()) << e.status().message();
  EXPECT_EQ(e->tokens.size(), 5u);
  EXPECT_EQ(seen, 5);
  EXPECT_EQ(e->finish_reason, "stop");
}

}  // namespace
}  // namespace megalith
