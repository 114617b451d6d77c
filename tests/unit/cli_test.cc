// The megalith command line, run as a user runs it: JSON on stdout, one-line errors on stderr,
// exit status non-zero on every bad input.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sys/wait.h>
#include <unistd.h>

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// ctest runs every test in its own process, concurrently: scratch files carry the pid.
fs::path scratch_path(const std::string& what) {
  return fs::temp_directory_path() / ("megalith_cli_" + what + "_" + std::to_string(getpid()));
}

struct Result {
  int exit_code;
  std::string out, err;
};

Result run(const std::string& args) {
  const fs::path err_file = scratch_path("stderr");
  const std::string cmd = std::string(MEGALITH_CLI) + " " + args + " 2>" + err_file.string();
  FILE* pipe = popen(cmd.c_str(), "r");
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) out.append(buf.data(), n);
  const int status = pclose(pipe);
  std::ifstream in(err_file);
  std::string err((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), out, err};
}

class CliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = scratch_path("model");
    fs::remove_all(dir_);
    const Result r = run("make-checkpoint --arch qwen3 --preset tiny --seed 3 --out " + dir_.string());
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  static void TearDownTestSuite() {
    fs::remove_all(dir_);
    fs::remove(scratch_path("stderr"));
  }
  static std::string model() { return " --model " + dir_.string(); }
  static fs::path dir_;
};
fs::path CliTest::dir_;

TEST_F(CliTest, GenerateJsonIsGreedyAndDeterministic) {
  const std::string args =
      "generate" + model() +
      " --prompt-ids 1,2,3 --max-new-tokens 8 --temperature 0 --device cpu --json --ignore-eos";
  const Result a = run(args), b = run(args);
  ASSERT_EQ(a.exit_code, 0) << a.err;
  const json j = json::parse(a.out);
  ASSERT_EQ(j["tokens"].size(), 8u);
  EXPECT_EQ(j["finish_reason"], "length");
  EXPECT_EQ(j["prompt_tokens"], 3);
  EXPECT_EQ(json::parse(b.out)["tokens"], j["tokens"]);
}

TEST_F(CliTest, ScoreAgreesWithGenerate) {
  const Result g = run("generate" + model() + " --prompt-ids 5,6 --max-new-tokens 3 --json --ignore-eos");
  ASSERT_EQ(g.exit_code, 0) << g.err;
  std::string ids = "5,6";
  const json generated = json::parse(g.out);
  for (const auto& t : generated["tokens"]) ids += "," + std::to_string(t.get<int>());
  const Result s = run("score" + model() + " --ids " + ids + " --device cpu --json");
  ASSERT_EQ(s.exit_code, 0) << s.err;
  const json j = json::parse(s.out);
  ASSERT_EQ(j["logprobs"].size(), 4u);  // n - 1 values
  for (const auto& lp : j["logprobs"]) EXPECT_LE(lp.get<double>(), 0.0);
  // Greedy picks the likeliest token: its log-prob is at least log(1/vocab).
  for (size_t i = 1; i < 4; ++i) EXPECT_GE(j["logprobs"][i].get<double>(), -std::log(512.0));
  EXPECT_GT(j["perplexity"].get<double>(), 1.0);
}

TEST_F(CliTest, SampledGenerationDependsOnSeed) {
  const std::string base = "generate" + model() +
                           " --prompt-ids 1 --max-new-tokens 12 --temperature 1.5 --json "
                           "--ignore-eos --seed ";
  const Result a = run(base + "1"), b = run(base + "1"), c = run(base + "2");
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(json::parse(a.out)["tokens"], json::parse(b.out)["tokens"]);
  EXPECT_NE(json::parse(a.out)["tokens"], json::parse(c.out)["tokens"]);
}

TEST_F(CliTest, MakeCheckpointIsReproducible) {
  const fs::path other = scratch_path("model_again");
  fs::remove_all(other);
  ASSERT_EQ(run("make-checkpoint --arch qwen3 --preset tiny --seed 3 --out " + other.string()).exit_code, 0);
  auto bytes = [](const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  };
  EXPECT_EQ(bytes(other / "model.safetensors"), bytes(dir_ / "model.safetensors"));
  EXPECT_EQ(bytes(other / "config.json"), bytes(dir_ / "config.json"));
  fs::remove_all(other);
}

TEST_F(CliTest, BadInputFailsWithOneLineError) {
  const fs::path empty_dir = scratch_path("empty");
  fs::create_directories(empty_dir);
  const std::string cases[] = {
      "generate" + model() + " --prompt-ids 1,x,3",
      "generate" + model() + " --prompt-ids ''",
      "generate" + model() + " --prompt-ids 1,99999",
      "generate" + model() + " --prompt-ids 1 --max-new-tokens -1",
      "generate" + model() + " --prompt-ids 1 --temperature -2",
      "generate" + model() + " --prompt-ids 1 --top-p 0",
      "generate" + model() + " --prompt-ids 1 --device tpu",
      "generate --model /nonexistent/dir --prompt-ids 1",
      "generate --model " + empty_dir.string() + " --prompt-ids 1",
      "score" + model() + " --ids 1",
      "make-checkpoint --arch gpt2 --preset tiny --out " + empty_dir.string(),
      "make-checkpoint --arch llama --preset qwen3-8b --out " + empty_dir.string(),
      "make-checkpoint --arch llama --preset tiny --dtype int8 --out " + empty_dir.string(),
  };
  for (const std::string& args : cases) {
    const Result r = run(args);
    EXPECT_NE(r.exit_code, 0) << args;
    EXPECT_LT(r.exit_code, 128) << "crashed: " << args;
    EXPECT_FALSE(r.err.empty()) << args;
    EXPECT_TRUE(r.out.empty()) << args;
  }
  fs::remove_all(empty_dir);
}

TEST_F(CliTest, EverySubcommandHasHelp) {
  for (const char* cmd : {"", "generate", "score", "make-checkpoint"}) {
    const Result r = run(std::string(cmd) + " --help");
    EXPECT_EQ(r.exit_code, 0) << cmd;
    EXPECT_NE(r.out.find("--"), std::string::npos) << cmd;
  }
}

}  // namespace
