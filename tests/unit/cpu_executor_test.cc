// The CPU executor: the compiled task graph gives the reference model's tokens and nearly its
// log-probs; bit-identical results for every worker count, scheduling mode and shuffle seed;
// a removed dependency shows up in a stress run; a deadlock becomes an error naming the
// stuck worker, task and event.
#include "megalith/runtime/cpu_executor.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <unistd.h>

#include "megalith/compiler/compiler.h"
#include "megalith/engine/generation.h"
#include "megalith/model/model_graph.h"
#include "megalith/model/random_checkpoint.h"
#include "task_graph_mutations.h"

namespace megalith {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kMaxSeq = 48;
const std::vector<int32_t> kPrompt = {5, 17, 3, 250, 42, 7};

struct Model {
  fs::path dir;
  std::unique_ptr<Checkpoint> ckpt;
  Graph graph;
};

// Tiny random checkpoints of each architecture, written once per test process.
const Model& model(Architecture arch, DType dtype = DType::kBF16) {
  static std::map<std::pair<Architecture, DType>, Model> models;
  auto it = models.find({arch, dtype});
  if (it != models.end()) return it->second;
  Model m;
  m.dir = fs::temp_directory_path() /
          fmt::format("megalith_exec_{}_{}_{}", architecture_short_name(arch),
                      dtype_short_name(dtype), getpid());
  fs::remove_all(m.dir);
  ModelConfig cfg = *preset_config(arch, "tiny");
  cfg.dtype = dtype;
  EXPECT_TRUE(write_random_checkpoint(cfg, {.seed = 11}, m.dir).ok());
  m.ckpt = std::move(load_checkpoint(m.dir)).value();
  m.graph = std::move(build_decode_graph(m.ckpt->config(), 1, kMaxSeq)).value();
  return models.emplace(std::make_pair(arch, dtype), std::move(m)).first->second;
}

// Slices of 8 cache positions: the short caches here split attention (partials and a merge)
// once there are workers for it.
TaskGraph compiled(const Model& m, int32_t workers) {
  StatusOr<TaskGraph> tg = compile(m.graph, m.ckpt->config(),
                                   {.num_workers = workers, .attention_keys_per_split = 8});
  EXPECT_TRUE(tg.ok()) << tg.status().message();
  return std::move(tg).value();
}

struct Outputs {
  std::vector<int32_t> tokens;
  std::vector<double> logprobs;
  bool operator==(const Outputs&) const = default;
};

// 20 greedy tokens after the prompt, and the score of the prompt plus those tokens.
StatusOr<Outputs> run_model(const TaskGraph& tg, const Checkpoint& ckpt, const CpuExecutorOptions& o) {
  MEGALITH_ASSIGN_OR_RETURN(auto exec, CpuExecutor::create(tg, ckpt, o));
  Outputs out;
  MEGALITH_ASSIGN_OR_RETURN(GenerationResult gen, generate(*exec, kPrompt, {20, {}}, SamplingParams{}));
  out.tokens = gen.tokens;
  std::vector<int32_t> ids = kPrompt;
  ids.insert(ids.end(), gen.tokens.begin(), gen.tokens.end());
  MEGALITH_ASSIGN_OR_RETURN(out.logprobs, score(*exec, ids));
  return out;
}

class CpuExecutorArchTest : public ::testing::TestWithParam<Architecture> {};

// With f32 weights (and so an f32 KV cache) only the summation order differs from the
// reference: the same greedy tokens and log-probs within 1e-4.
TEST_P(CpuExecutorArchTest, MatchesTheReferenceModelInF32) {
  const Model& m = model(GetParam(), DType::kF32);
  ReferenceModel ref(*m.ckpt);
  Sampler greedy(SamplingParams{});
  auto expected = generate(ref, kPrompt, {20, {}}, greedy);
  ASSERT_TRUE(expected.ok());
  std::vector<int32_t> ids = kPrompt;
  ids.insert(ids.end(), expected->tokens.begin(), expected->tokens.end());
  auto expected_lp = score(ref, ids);
  ASSERT_TRUE(expected_lp.ok());

  auto got = run_model(compiled(m, 4), *m.ckpt, {});
  ASSERT_TRUE(got.ok()) << got.status().message();
  EXPECT_EQ(got->tokens, expected->tokens);
  ASSERT_EQ(got->logprobs.size(), expected_lp->size());
  for (size_t i = 0; i < got->logprobs.size(); ++i) {
    EXPECT_NEAR(got->logprobs[i], (*expected_lp)[i], 1e-4);
  }
}

// With bf16 weights the executor keeps the KV cache in bf16 (as transformers does), the
// reference in f32: log-probs of the same ids stay close.
TEST_P(CpuExecutorArchTest, ScoresCloseToTheReferenceModelInBf16) {
  const Model& m = model(GetParam());
  std::vector<int32_t> ids = kPrompt;
  for (int32_t i = 0; i < 30; ++i) ids.push_back((i * 37 + 11) % 512);
  ReferenceModel ref(*m.ckpt);
  auto expected = score(ref, ids);
  ASSERT_TRUE(expected.ok());
  auto exec = CpuExecutor::create(compiled(m, 3), *m.ckpt, {});
  ASSERT_TRUE(exec.ok());
  auto got = score(**exec, ids);
  ASSERT_TRUE(got.ok()) << got.status().message();
  ASSERT_EQ(got->size(), expected->size());
  for (size_t i = 0; i < got->size(); ++i) {
    EXPECT_NEAR((*got)[i], (*expected)[i], 3e-2 + 3e-3 * std::abs((*expected)[i]));
  }
}

TEST_P(CpuExecutorArchTest, IdenticalForEveryThreadCountModeAndSeed) {
  const Model& m = model(GetParam());
  const TaskGraph tg = compiled(m, 8);
  CpuExecutorOptions one_thread;
  one_thread.threads = 1;
  auto baseline = run_model(tg, *m.ckpt, one_thread);
  ASSERT_TRUE(baseline.ok()) << baseline.status().message();
  for (int32_t threads : {2, 3, 8}) {
    for (SchedulingMode mode : {SchedulingMode::kStatic, SchedulingMode::kDynamic}) {
      for (uint64_t seed : {0, 1, 2}) {
        CpuExecutorOptions o;
        o.threads = threads;
        o.mode = mode;
        o.shuffle_seed = seed;
        o.scheduler_threads = 1 + int32_t(seed);
        auto got = run_model(tg, *m.ckpt, o);
        ASSERT_TRUE(got.ok()) << got.status().message();
        EXPECT_TRUE(*got == *baseline) << threads << " threads, " << scheduling_mode_name(mode)
                                       << ", seed " << seed;
      }
    }
  }
}

// Graphs compiled for different worker counts split attention and the vocabulary
// differently, so they agree to rounding, and on the greedy tokens.
TEST_P(CpuExecutorArchTest, EveryWorkerCountGivesTheSameTokens) {
  const Model& m = model(GetParam(), DType::kF32);
  auto baseline = run_model(compiled(m, 1), *m.ckpt, {});
  ASSERT_TRUE(baseline.ok());
  for (int32_t workers : {2, 5, 16, 132}) {
    auto got = run_model(compiled(m, workers), *m.ckpt, {});
    ASSERT_TRUE(got.ok()) << got.status().message();
    EXPECT_EQ(got->tokens, baseline->tokens) << workers << " workers";
    for (size_t i = 0; i < got->logprobs.size(); ++i) {
      EXPECT_NEAR(got->logprobs[i], baseline->logprobs[i], 1e-4) << workers << " workers";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllArchitectures, CpuExecutorArchTest,
                         ::testing::Values(Architecture::kLlama, Architecture::kQwen2,
                                           Architecture::kQwen3),
                         [](const auto& info) {
                           return std::string(architecture_short_name(info.param));
                         });

// The stress run catches a removed dependency: the consumer, no longer waiting, runs while
// its (deliberately slow) producers have not, and reads poison or stale data.
TEST(CpuExecutorStress, RemovedDependenciesChangeTheResult) {
  const Model& m = model(Architecture::kQwen3);
  const TaskGraph tg = compiled(m, 8);
  auto baseline = run_model(tg, *m.ckpt, {});
  ASSERT_TRUE(baseline.ok());
  int caught = 0, tried = 0;
  for (uint32_t t = 1; t < tg.tasks.size(); t += 7) {
    const abi::TaskDesc& d = tg.tasks[t];
    const uint32_t w = d.wait_begin;
    if (d.wait_count == 0 || tg.waits[w].step_offset != 0) continue;
    const TaskGraph mutated = without_wait(tg, t, w);
    bool differs = false;
    // Dynamic placement puts the consumer and its held-back producers on random workers; a
    // few seeds make sharing one queue (which would hide the race) vanishingly unlikely.
    for (uint64_t seed = 1; seed <= 4 && !differs; ++seed) {
      CpuExecutorOptions o;
      o.mode = SchedulingMode::kDynamic;
      o.shuffle_seed = seed;
      o.poison_each_step = true;
      o.deadlock_timeout_s = 1;
      o.slow_task_ms = 2;
      for (uint32_t p = 0; p < tg.tasks.size(); ++p) {
        const abi::TaskDesc& pd = tg.tasks[p];
        if (pd.signal == tg.waits[w].event || pd.second_signal == tg.waits[w].event) {
          o.slow_tasks.push_back(p);
        }
      }
      auto got = run_model(mutated, *m.ckpt, o);
      differs = !got.ok() || !(*got == *baseline);
    }
    ++tried;
    caught += differs;
  }
  EXPECT_GE(tried, 6);
  EXPECT_EQ(caught, tried);
}

// An attention task that no longer waits for its step's q/k/v (and so for the embedding that
// writes the position) reads the poisoned position, -1: it must neither write outside its
// cache nor crash, and the tokens change.
TEST(CpuExecutorStress, AttentionBeforeItsPositionComputesNothing) {
  const Model& m = model(Architecture::kQwen3);
  const TaskGraph tg = compiled(m, 8);
  auto baseline = run_model(tg, *m.ckpt, {});
  ASSERT_TRUE(baseline.ok());
  int tried = 0;
  for (uint32_t t = 0; t < tg.tasks.size() && tried < 2; ++t) {
    const abi::TaskDesc& d = tg.tasks[t];
    if (d.kind != abi::TaskKind::kAttentionPartial || d.wait_count != 1) continue;
    const TaskGraph mutated = without_wait(tg, t, d.wait_begin);
    CpuExecutorOptions o;
    o.mode = SchedulingMode::kDynamic;
    o.poison_each_step = true;
    o.deadlock_timeout_s = 1;
    o.slow_task_ms = 5;
    o.slow_tasks = {tg.source_task};
    auto got = run_model(mutated, *m.ckpt, o);
    EXPECT_TRUE(!got.ok() || !(*got == *baseline)) << "attention task " << t;
    ++tried;
  }
  EXPECT_EQ(tried, 2);
}

TEST(CpuExecutorErrors, DeadlockIsReportedNotHung) {
  const Model& m = model(Architecture::kLlama);
  TaskGraph tg = compiled(m, 2);
  const uint32_t t = tg.sink_task;
  const uint32_t e = tg.waits[tg.tasks[t].wait_begin].event;
  ++tg.events[e].triggers;  // one signal more than anyone sends: the sink never runs
  for (SchedulingMode mode : {SchedulingMode::kStatic, SchedulingMode::kDynamic}) {
    CpuExecutorOptions o;
    o.mode = mode;
    o.deadlock_timeout_s = 0.3;
    auto exec = CpuExecutor::create(tg, *m.ckpt, o);
    ASSERT_TRUE(exec.ok());
    ASSERT_TRUE((*exec)->start_sequence(kPrompt).ok());
    const Status s = (*exec)->run(3);
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.message().find("deadlock"), std::string::npos) << s.message();
    EXPECT_NE(s.message().find("sample"), std::string::npos) << s.message();
    EXPECT_NE(s.message().find("event"), std::string::npos) << s.message();
    EXPECT_FALSE((*exec)->run(1).ok()) << "a broken executor refuses further work";
  }
}

TEST(CpuExecutorErrors, CheckpointsOfAnotherModelAreRefused) {
  const Model& qwen3 = model(Architecture::kQwen3);
  const Model& qwen3_f32 = model(Architecture::kQwen3, DType::kF32);
  ModelConfig no_qk_norm = qwen3.ckpt->config();  // Llama: the same shapes, no q_norm or k_norm
  no_qk_norm.arch = Architecture::kLlama;
  no_qk_norm.qk_norm = false;
  auto other = random_checkpoint(no_qk_norm, 3);
  ASSERT_TRUE(other.ok()) << other.status().message();
  auto missing = CpuExecutor::create(compiled(qwen3, 2), **other, {});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound) << missing.status().message();
  EXPECT_NE(missing.status().message().find("norm.weight"), std::string::npos)
      << missing.status().message();
  auto other_type = CpuExecutor::create(compiled(qwen3, 2), *qwen3_f32.ckpt, {});
  ASSERT_FALSE(other_type.ok());
  EXPECT_EQ(other_type.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(other_type.status().message().find("bytes of f32, the task graph expects"),
            std::string::npos)
      << other_type.status().message();
}

TEST(CpuExecutorErrors, BadRequestsAreErrors) {
  const Model& m = model(Architecture::kQwen2);
  auto exec = CpuExecutor::create(compiled(m, 2), *m.ckpt, {});
  ASSERT_TRUE(exec.ok());
  CpuExecutor& x = **exec;
  EXPECT_FALSE(x.start_sequence({}).ok());
  EXPECT_FALSE(x.start_sequence(std::vector<int32_t>{1, 1 << 20}).ok());
  EXPECT_FALSE(x.start_sequence(std::vector<int32_t>(kMaxSeq + 1, 1)).ok());
  EXPECT_FALSE(x.start_sequence(kPrompt, -1.0).ok());
  ASSERT_TRUE(x.start_sequence(kPrompt).ok());
  EXPECT_FALSE(x.run(kMaxSeq + 1).ok());
  EXPECT_FALSE(x.force_token(3).ok()) << "the prompt's positions are not computed yet";
  ASSERT_TRUE(x.run(int64_t(kPrompt.size())).ok());
  EXPECT_TRUE(x.force_token(3).ok());
  EXPECT_FALSE(x.force_token(-1).ok());
  auto gen = generate(x, kPrompt, {kMaxSeq, {}}, SamplingParams{});
  EXPECT_FALSE(gen.ok());
}

TEST(CpuExecutorSampling, TemperatureIsDeterministicPerSeedAndTopKRunsOnTheHost) {
  const Model& m = model(Architecture::kQwen3);
  const TaskGraph tg = compiled(m, 3);
  auto sample = [&](SamplingParams p, SchedulingMode mode) {
    CpuExecutorOptions o;
    o.mode = mode;
    auto exec = CpuExecutor::create(tg, *m.ckpt, o);
    EXPECT_TRUE(exec.ok());
    auto r = generate(**exec, kPrompt, {16, {}}, p);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r->tokens;
  };
  const SamplingParams hot{.temperature = 1.5, .seed = 9};
  EXPECT_EQ(sample(hot, SchedulingMode::kStatic), sample(hot, SchedulingMode::kDynamic));
  EXPECT_NE(sample(hot, SchedulingMode::kStatic), sample({.temperature = 1.5, .seed = 10}, SchedulingMode::kStatic));
  EXPECT_NE(sample(hot, SchedulingMode::kStatic), sample(SamplingParams{}, SchedulingMode::kStatic));
  const SamplingParams top_k{.temperature = 1.0, .top_k = 3, .seed = 4};
  EXPECT_EQ(sample(top_k, SchedulingMode::kStatic), sample(top_k, SchedulingMode::kDynamic));
}

}  // namespace
}  // namespace megalith
