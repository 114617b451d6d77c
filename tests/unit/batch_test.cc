// Batch > 1: the compiler gives every slot its rows, its KV-cache slice and its attention
// tasks; the CPU executor decodes the slots' sequences side by side, each bit-identical to the
// same sequence decoded alone, whenever it joins; BatchGenerator and the batched RequestQueue
// run more requests than slots, each answered with exactly its own tokens.
#include "megalith/engine/batch_generator.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <future>
#include <map>
#include <memory>
#include <thread>
#include <vector>

#include "megalith/compiler/compiler.h"
#include "megalith/engine/request_queue.h"
#include "megalith/model/model_graph.h"
#include "megalith/model/random_checkpoint.h"
#include "megalith/runtime/cpu_executor.h"

namespace megalith {
namespace {

constexpr int64_t kMaxSeq = 40;

struct Fixture {
  ModelConfig cfg;
  std::unique_ptr<Checkpoint> ckpt;
  Graph graph;
};

const Fixture& fixture(Architecture arch) {
  static std::map<Architecture, Fixture> fixtures;
  auto it = fixtures.find(arch);
  if (it != fixtures.end()) return it->second;
  Fixture f;
  f.cfg = *preset_config(arch, "tiny");
  f.ckpt = std::move(random_checkpoint(f.cfg, 21)).value();
  f.graph = std::move(build_decode_graph(f.cfg, 1, kMaxSeq)).value();
  return fixtures.emplace(arch, std::move(f)).first->second;
}

// Slices of 8 positions and enough workers that attention splits and merges.
TaskGraph compiled(const Fixture& f, int32_t batch) {
  auto tg = compile(f.graph, f.cfg,
                    {.num_workers = 24, .batch = batch, .attention_keys_per_split = 8});
  EXPECT_TRUE(tg.ok()) << tg.status().message();
  return std::move(tg).value();
}

std::unique_ptr<CpuExecutor> executor(const Fixture& f, const TaskGraph& tg,
                                      SchedulingMode mode = SchedulingMode::kStatic) {
  auto exec = CpuExecutor::create(tg, *f.ckpt, {.mode = mode, .threads = 3});
  EXPECT_TRUE(exec.ok()) << exec.status().message();
  return std::move(exec).value();
}

size_t count_kind(const TaskGraph& tg, abi::TaskKind kind) {
  size_t n = 0;
  for (const abi::TaskDesc& t : tg.tasks) n += t.kind == kind;
  return n;
}

TEST(BatchCompile, GivesEverySlotItsRowsCacheSliceAndAttentionTasks) {
  const Fixture& f = fixture(Architecture::kQwen3);
  const TaskGraph one = compiled(f, 1), three = compiled(f, 3);
  EXPECT_EQ(one.batch, 1);
  EXPECT_EQ(three.batch, 3);
  const auto bytes = [](const TaskGraph& tg, const char* name) {
    return tg.buffers[tg.find_buffer(name)].bytes;
  };
  for (const char* io : {"control", "prompt", "tokens", "logprobs", "logits"}) {
    EXPECT_EQ(bytes(three, io), 3 * bytes(one, io)) << io;
  }
  EXPECT_EQ(bytes(three, "layers.0.k_cache"), 3 * bytes(one, "layers.0.k_cache"));
  // 24 workers, 40 positions at 8 keys a split: at batch 1, 8 splits of each KV head (5 by
  // the keys, raised to the compiler's 8 from 32 positions on); at batch 3, the 4 that the
  // workers hold for each of 3 slots x 2 KV heads.
  const int64_t kv = f.cfg.num_kv_heads, layers = f.cfg.num_layers;
  ASSERT_EQ(kv, 2);
  const int64_t splits_one = 8, splits_three = 4;
  EXPECT_EQ(count_kind(one, abi::TaskKind::kAttentionPartial), size_t(layers * kv * splits_one));
  EXPECT_EQ(count_kind(three, abi::TaskKind::kAttentionPartial),
            size_t(layers * 3 * kv * splits_three));
  // The linears' tiles are the same; their tasks cover every slot's row.
  EXPECT_EQ(count_kind(three, abi::TaskKind::kRmsNormLinear),
            count_kind(one, abi::TaskKind::kRmsNormLinear));
  for (const abi::TaskDesc& t : three.tasks) {
    if (t.kind == abi::TaskKind::kRmsNormLinear) {
      EXPECT_EQ(t.refs[0].rows, 3);
    } else if (t.kind == abi::TaskKind::kAttentionPartial) {
      EXPECT_EQ(t.refs[7].rows, kMaxSeq);
    }
  }
  EXPECT_FALSE(compile(f.graph, f.cfg, {.batch = 0}).ok());
  EXPECT_FALSE(compile(f.graph, f.cfg, {.batch = 257}).ok());
}

struct Decoded {
  std::vector<int32_t> tokens;
  std::vector<float> logprobs;
  bool operator==(const Decoded&) const = default;
};

// The tokens and log-probs of positions [0, n) of `slot`.
Decoded read(const Executor& exec, int32_t slot, int64_t n) {
  Decoded d;
  for (int64_t p = 0; p < n; ++p) {
    d.tokens.push_back(exec.token(p, slot));
    d.logprobs.push_back(exec.logprob(p, slot));
  }
  return d;
}

TEST(BatchExecutor, EachSlotDecodesAsItWouldAloneWheneverItJoins) {
  for (Architecture arch : {Architecture::kQwen3, Architecture::kLlama}) {
    const Fixture& f = fixture(arch);
    const TaskGraph tg = compiled(f, 3);
    const std::vector<int32_t> a = {5, 17, 3, 250, 42}, b = {9, 9, 1}, c = {77, 1, 2, 3, 4, 5, 6};
    // Alone: each prompt in slot 0 of its own executor, the other slots idle.
    std::vector<Decoded> alone;
    for (const auto& [prompt, temperature] :
         std::vector<std::pair<std::vector<int32_t>, double>>{{a, 0.0}, {b, 1.3}, {c, 0.0}}) {
      auto exec = executor(f, tg);
      ASSERT_TRUE(exec->start_sequence(prompt, temperature, 7).ok());
      ASSERT_TRUE(exec->run(20).ok());
      alone.push_back(read(*exec, 0, 20));
    }
    // Together, dynamic scheduling: a in slot 2 from the start, b in slot 0 five steps later,
    // c in slot 1 after eleven; a's slot goes idle after its 20 positions.
    auto exec = executor(f, tg, SchedulingMode::kDynamic);
    ASSERT_TRUE(exec->start_sequence(a, 0.0, 7, 2).ok());
    ASSERT_TRUE(exec->run(5).ok());
    ASSERT_TRUE(exec->start_sequence(b, 1.3, 7, 0).ok());
    ASSERT_TRUE(exec->run(6).ok());
    ASSERT_TRUE(exec->start_sequence(c, 0.0, 7, 1).ok());
    ASSERT_TRUE(exec->run(9).ok());
    EXPECT_EQ(exec->position(2), 20);
    EXPECT_EQ(read(*exec, 2, 20), alone[0]);
    ASSERT_TRUE(exec->end_sequence(2).ok());
    EXPECT_FALSE(exec->active(2));
    ASSERT_TRUE(exec->run(11).ok());
    EXPECT_EQ(exec->position(2), 0);
    EXPECT_EQ(read(*exec, 0, 20), alone[1]);
    EXPECT_EQ(read(*exec, 1, 20), alone[2]);
  }
}

TEST(BatchExecutor, SlotErrors) {
  const Fixture& f = fixture(Architecture::kQwen2);
  auto exec = executor(f, compiled(f, 2));
  EXPECT_EQ(exec->batch(), 2);
  EXPECT_FALSE(exec->run(1).ok()) << "no sequence";
  EXPECT_FALSE(exec->start_sequence(std::vector<int32_t>{1}, 0.0, 0, 2).ok());
  EXPECT_FALSE(exec->start_sequence(std::vector<int32_t>{1}, 0.0, 0, -1).ok());
  EXPECT_FALSE(exec->end_sequence(5).ok());
  ASSERT_TRUE(exec->start_sequence(std::vector<int32_t>{1, 2}, 0.0, 0, 1).ok());
  EXPECT_FALSE(exec->force_token(3, 0).ok()) << "slot 0 is idle";
  ASSERT_TRUE(exec->run(kMaxSeq - 4).ok());
  ASSERT_TRUE(exec->start_sequence(std::vector<int32_t>{1, 2}, 0.0, 0, 0).ok());
  EXPECT_FALSE(exec->run(5).ok()) << "slot 1 would pass the cache";
  EXPECT_TRUE(exec->run(4).ok());
}

// A request and the tokens it gets alone (a fresh executor of the same task graph).
struct Job {
  std::vector<int32_t> prompt;
  int64_t new_tokens;
  SamplingParams sampling;
  std::vector<int64_t> stops;
};

std::vector<Job> jobs() {
  return {{{5, 17, 3, 250, 42}, 12, {}, {}},
          {{9, 9, 1}, 20, {.temperature = 1.3, .seed = 3}, {}},
          {{77, 1, 2, 3, 4, 5, 6, 8, 9, 10}, 9, {}, {}},
          {{40}, 15, {.temperature = 1.0, .top_k = 5, .seed = 8}, {}},  // sampled on the host
          {{31, 32, 33}, 0, {}, {}},
          {{12, 13}, 25, {}, {}},
          {{2, 4, 6, 8}, 30, {.temperature = 0.7, .top_p = 0.9, .seed = 1}, {}}};
}

GenerationResult alone(const Fixture& f, const TaskGraph& tg, const Job& job) {
  auto exec = executor(f, tg);
  auto r = generate(*exec, job.prompt, {job.new_tokens, job.stops}, job.sampling);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return std::move(r).value();
}

TEST(BatchGenerator, RunsMoreRequestsThanSlotsEachWithItsOwnTokens) {
  const Fixture& f = fixture(Architecture::kQwen3);
  const TaskGraph tg = compiled(f, 3);
  std::vector<Job> all = jobs();
  // A stop id: the first job's fifth token ends it there (or where it first makes it).
  const std::vector<int32_t> unstopped = alone(f, tg, all[0]).tokens;
  all[0].stops = {unstopped[4]};
  auto exec = executor(f, tg, SchedulingMode::kDynamic);
  BatchGenerator batch(*exec);
  std::vector<std::optional<StatusOr<GenerationResult>>> results(all.size());
  std::vector<std::vector<int32_t>> streamed(all.size());
  size_t next = 0;
  int most_active = 0;
  while (next < all.size() || batch.busy()) {
    while (next < all.size() && batch.free_slots() > 0) {
      const size_t i = next++;
      GenerationRequest request{all[i].prompt, {all[i].new_tokens, all[i].stops}, all[i].sampling,
                                [&results, i](StatusOr<GenerationResult> r) { results[i] = r; }};
      request.options.on_token = [&streamed, i](int32_t t) { streamed[i].push_back(t); };
      batch.add(std::move(request));
    }
    most_active = std::max(most_active, 3 - batch.free_slots());
    ASSERT_TRUE(batch.run_launch().ok());
  }
  EXPECT_EQ(most_active, 3) << "requests shared launches";
  for (size_t i = 0; i < all.size(); ++i) {
    ASSERT_TRUE(results[i].has_value()) << i;
    ASSERT_TRUE(results[i]->ok()) << results[i]->status().message();
    const GenerationResult expected = alone(f, tg, all[i]);
    EXPECT_EQ((*results[i])->tokens, expected.tokens) << "request " << i;
    EXPECT_EQ((*results[i])->finish_reason, expected.finish_reason) << "request " << i;
    EXPECT_EQ(streamed[i], expected.tokens) << "request " << i;
  }
  const size_t stop_at = size_t(std::find(unstopped.begin(), unstopped.end(), unstopped[4]) -
                                unstopped.begin());
  EXPECT_EQ((*results[0])->tokens.size(), stop_at + 1);
  EXPECT_EQ((*results[0])->finish_reason, "stop");
  EXPECT_TRUE((*results[4])->tokens.empty());

  // A request that cannot run is answered at once and takes no slot.
  std::optional<StatusOr<GenerationResult>> refused;
  batch.add({std::vector<int32_t>(kMaxSeq, 1), {2, {}}, {},
             [&refused](StatusOr<GenerationResult> r) { refused = r; }});
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(batch.busy());
}

TEST(BatchedRequestQueue, ConcurrentCallersGetExactlyTheirOwnTokens) {
  const Fixture& f = fixture(Architecture::kLlama);
  const TaskGraph tg = compiled(f, 2);
  const std::vector<Job> all = jobs();
  std::vector<GenerationResult> expected;
  for (const Job& job : all) expected.push_back(alone(f, tg, job));
  auto exec = executor(f, tg);
  RequestQueue queue(*exec);
  std::vector<std::thread> callers;
  std::vector<std::optional<StatusOr<GenerationResult>>> results(all.size());
  for (size_t i = 0; i < all.size(); ++i) {
    callers.emplace_back([&, i] {
      std::promise<StatusOr<GenerationResult>> done;
      queue.submit({all[i].prompt, {all[i].new_tokens, all[i].stops}, all[i].sampling,
                    [&done](StatusOr<GenerationResult> r) { done.set_value(std::move(r)); }});
      results[i] = done.get_future().get();
    });
  }
  for (std::thread& t : callers) t.join();
  for (size_t i = 0; i < all.size(); ++i) {
    ASSERT_TRUE(results[i]->ok()) << results[i]->status().message();
    EXPECT_EQ((*results[i])->tokens, expected[i].tokens) << "request " << i;
  }

  // Shutdown while requests run and wait: every caller is answered, none hangs.
  std::vector<std::future<StatusOr<GenerationResult>>> pending;
  for (int i = 0; i < 4; ++i) {
    auto done = std::make_shared<std::promise<StatusOr<GenerationResult>>>();
    pending.push_back(done->get_future());
    queue.submit({{1, 2, 3}, {kMaxSeq - 2, {}}, {},
                  [done](StatusOr<GenerationResult> r) { done->set_value(std::move(r)); }});
  }
  queue.shutdown();
  for (auto& p : pending) {
    const StatusOr<GenerationResult> r = p.get();
    EXPECT_TRUE(r.ok() || r.status().code() == StatusCode::kUnavailable) << r.status().message();
  }
}

}  // namespace
}  // namespace megalith
