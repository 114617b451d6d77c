// The CPU reference model against fixtures produced by Hugging Face transformers
// (tests/golden/make_fixtures.py): log-probs of every prompt position within 1e-4 and 32
// greedy tokens identical.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "megalith/compiler/compiler.h"
#include "megalith/engine/generation.h"
#include "megalith/model/checkpoint.h"
#include "megalith/model/model_graph.h"
#include "megalith/model/safetensors.h"
#include "megalith/runtime/cpu_executor.h"

namespace megalith {
namespace {

namespace fs = std::filesystem;
constexpr double kLogprobTolerance = 1e-4;

const fs::path kFixtures = fs::path(MEGALITH_SOURCE_DIR) / "tests/golden/fixtures";

// MEGALITH_GOLDEN_FIXTURES points the comparison at another set, e.g. models made by
// `make_fixtures.py --unseen N`.
fs::path fixture_root() {
  const char* env = std::getenv("MEGALITH_GOLDEN_FIXTURES");
  return env ? fs::path(env) : kFixtures;
}

struct Fixture {
  std::vector<int32_t> prompt, greedy_tokens;
  std::vector<float> logits;  // [prompt, vocab]
};

Fixture read_fixture(const fs::path& dir) {
  Fixture f;
  std::ifstream in(dir / "expected.json");
  const auto j = nlohmann::json::parse(in);
  f.prompt = j["prompt"].get<std::vector<int32_t>>();
  f.greedy_tokens = j["greedy_tokens"].get<std::vector<int32_t>>();
  auto file = SafetensorsFile::open(dir / "logits.safetensors");
  MEGALITH_CHECK(file.ok(), "{}", file.status().message());
  f.logits = (*file)->find("logits")->view().to_float();
  return f;
}

struct Comparison {
  double max_logprob_diff = 0;
  std::vector<int32_t> tokens;
};

// Runs the reference on the checkpoint in `model_dir` and measures it against `f`.
Comparison compare(const fs::path& model_dir, const Fixture& f) {
  auto ckpt = load_checkpoint(model_dir);
  MEGALITH_CHECK(ckpt.ok(), "{}", ckpt.status().message());
  ReferenceModel model(**ckpt);
  auto logits = model.forward(f.prompt);
  MEGALITH_CHECK(logits.ok(), "{}", logits.status().message());
  const size_t vocab = size_t((*ckpt)->config().vocab_size);
  MEGALITH_CHECK(logits->size() == f.logits.size(), "logit count");
  Comparison c;
  for (size_t row = 0; row < f.prompt.size(); ++row) {
    const auto ours = log_softmax(std::span(logits->data() + row * vocab, vocab));
    const auto theirs = log_softmax(std::span(f.logits.data() + row * vocab, vocab));
    for (size_t i = 0; i < vocab; ++i) {
      c.max_logprob_diff = std::max(c.max_logprob_diff, std::fabs(ours[i] - theirs[i]));
    }
  }
  Sampler greedy({});
  auto gen = generate(model, f.prompt, {int64_t(f.greedy_tokens.size()), {}}, greedy);
  MEGALITH_CHECK(gen.ok(), "{}", gen.status().message());
  c.tokens = gen->tokens;
  return c;
}

std::vector<fs::path> fixture_dirs() {
  std::vector<fs::path> dirs;
  for (const auto& e : fs::directory_iterator(fixture_root())) dirs.push_back(e.path());
  std::sort(dirs.begin(), dirs.end());
  return dirs;
}

TEST(Golden, EveryArchitectureAndConfigStyleIsCovered) {
  std::set<std::string> archs, styles;
  for (const fs::path& dir : fixture_dirs()) {
    auto cfg = load_model_config(dir / "config.json");
    ASSERT_TRUE(cfg.ok()) << cfg.status().message();
    archs.insert(std::string(architecture_short_name(cfg->arch)));
    std::ifstream in(dir / "config.json");
    styles.insert(nlohmann::json::parse(in).contains("rope_parameters") ? "v5" : "hub");
  }
  EXPECT_EQ(archs, (std::set<std::string>{"llama", "qwen2", "qwen3"}));
  EXPECT_EQ(styles, (std::set<std::string>{"hub", "v5"}));
}

TEST(Golden, ReferenceMatchesTransformers) {
  for (const fs::path& dir : fixture_dirs()) {
    SCOPED_TRACE(dir.filename().string());
    const Fixture f = read_fixture(dir);
    const Comparison c = compare(dir, f);
    std::printf("%-40s max |log-prob diff| %.2e, %zu greedy tokens %s\n",
                dir.filename().c_str(), c.max_logprob_diff, c.tokens.size(),
                c.tokens == f.greedy_tokens ? "identical" : "DIFFER");
    EXPECT_LE(c.max_logprob_diff, kLogprobTolerance);
    EXPECT_EQ(c.tokens, f.greedy_tokens);
  }
}

// The comparison has teeth: a 1% change of the rotary base (a plausible bug) is caught.
TEST(Golden, PerturbedReferenceFails) {
  const fs::path src = kFixtures / "qwen3_hub_bf16_headdim";
  const fs::path dir = fs::temp_directory_path() / "megalith_golden_perturbed";
  fs::remove_all(dir);
  fs::copy(src, dir);
  std::ifstream in(src / "config.json");
  auto cfg = nlohmann::json::parse(in);
  cfg["rope_theta"] = cfg["rope_theta"].get<double>() * 1.01;
  std::ofstream(dir / "config.json") << cfg.dump();
  const Comparison c = compare(dir, read_fixture(src));
  EXPECT_GT(c.max_logprob_diff, kLogprobTolerance);
  fs::remove_all(dir);
}

// The compiled task graph on the CPU executor against the same fixtures: the log-prob of
// each next prompt token, and the greedy tokens. Its KV cache keeps the checkpoint's dtype,
// as transformers' does, so 16-bit checkpoints get a looser tolerance.
TEST(Golden, CompiledExecutorMatchesTransformers) {
  for (const fs::path& dir : fixture_dirs()) {
    SCOPED_TRACE(dir.filename().string());
    const Fixture f = read_fixture(dir);
    auto ckpt = load_checkpoint(dir);
    ASSERT_TRUE(ckpt.ok()) << ckpt.status().message();
    const ModelConfig& cfg = (*ckpt)->config();
    const int64_t positions = int64_t(f.prompt.size() + f.greedy_tokens.size());
    auto graph = build_decode_graph(cfg, 1, positions);
    ASSERT_TRUE(graph.ok());
    auto tg = compile(*graph, cfg, {.num_workers = 7});
    ASSERT_TRUE(tg.ok()) << tg.status().message();
    auto exec = CpuExecutor::create(*tg, **ckpt, {});
    ASSERT_TRUE(exec.ok()) << exec.status().message();

    const double tolerance = cfg.dtype == DType::kF32 ? kLogprobTolerance : 3e-2;
    auto scores = score(**exec, f.prompt);
    ASSERT_TRUE(scores.ok()) << scores.status().message();
    const size_t vocab = size_t(cfg.vocab_size);
    double max_diff = 0;
    for (size_t row = 0; row + 1 < f.prompt.size(); ++row) {
      const auto theirs = log_softmax(std::span(f.logits.data() + row * vocab, vocab));
      max_diff = std::max(max_diff, std::fabs((*scores)[row] - theirs[size_t(f.prompt[row + 1])]));
    }
    auto gen = generate(**exec, f.prompt, {int64_t(f.greedy_tokens.size()), {}}, SamplingParams{});
    ASSERT_TRUE(gen.ok()) << gen.status().message();
    std::printf("%-40s compiled: max |log-prob diff| %.2e, %zu greedy tokens %s\n",
                dir.filename().c_str(), max_diff, gen->tokens.size(),
                gen->tokens == f.greedy_tokens ? "identical" : "DIFFER");
    EXPECT_LE(max_diff, tolerance);
    EXPECT_EQ(gen->tokens, f.greedy_tokens);
  }
}

}  // namespace
}  // namespace megalith
