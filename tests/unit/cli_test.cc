// The megalith command line, run as a user runs it: JSON on stdout, one-line errors on stderr,
// exit status non-zero on every bad input.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <nlohmann/json.hpp>
#include <sys/wait.h>
#include <unistd.h>

#include "megalith/tokenizer/tokenizer.h"

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

// Without --model every subcommand uses the built-in model (models/default, a small Qwen3
// trained on English text): its continuation of a text prompt is English words.
TEST_F(CliTest, TheBuiltInModelWritesEnglish) {
  const std::string args = " --prompt \"And it came to pass\" --max-new-tokens 32 --device cpu";
  const Result implicit = run("generate" + args);
  const Result given = run("generate --model " MEGALITH_SOURCE_DIR "/models/default" + args);
  ASSERT_EQ(implicit.exit_code, 0) << implicit.err;
  EXPECT_EQ(implicit.out, given.out);
  std::istringstream words(implicit.out);
  int total = 0, alphabetic = 0, common = 0;
  for (std::string w; words >> w;) {
    while (!w.empty() && std::ispunct(static_cast<unsigned char>(w.back()))) w.pop_back();
    ++total;
    alphabetic += !w.empty() && std::all_of(w.begin(), w.end(), [](unsigned char c) {
      return std::isalpha(c) || c == '\'';
    });
    common += w == "the" || w == "and" || w == "of" || w == "to" || w == "that";
  }
  EXPECT_GE(total, 20) << implicit.out;
  EXPECT_GE(alphabetic, total * 9 / 10) << implicit.out;
  EXPECT_GE(common, 3) << implicit.out;
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
      "generate" + model() + " --prompt-ids 1 --keys-per-split -1",
      "generate" + model() + " --prompt hello",  // the model has no tokenizer.json
      "generate" + model() + " --prompt hello --prompt-ids 1",
      "generate" + model() + " --prompt-ids 1 --chat",
      "chat" + model() + " < /dev/null",  // no tokenizer.json
      "chat" + model() + " --max-new-tokens 0 < /dev/null",
      "serve" + model() + " --port 0",  // no tokenizer.json
      "serve" + model() + " --port 70000",
      "serve" + model() + " --host no.such.host.invalid --port 0",
      "generate" + model(),
      "generate --model /nonexistent/dir --prompt-ids 1",
      "generate --model " + empty_dir.string() + " --prompt-ids 1",
      "score" + model() + " --ids 1",
      "make-checkpoint --arch gpt2 --preset tiny --out " + empty_dir.string(),
      "make-checkpoint --arch llama --preset qwen3-8b --out " + empty_dir.string(),
      "make-checkpoint --arch llama --preset tiny --dtype int8 --out " + empty_dir.string(),
      "generate --model " + empty_dir.string() + " --random-weights --prompt-ids 1",
      "bench --preset no-such-model --no-peers",
      "bench --preset tiny --no-peers",  // three architectures have a "tiny"
      "bench --preset qwen3:tiny --device cpu --no-peers",
      "bench --preset qwen3:tiny --new-tokens 1 --no-peers",
      "trace --preset no-such-model",
      "trace --preset qwen3:tiny --device cpu",
      "trace --preset qwen3:tiny --steps 0",
      "trace --preset qwen3:tiny --out ''",
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

// --prompt TEXT: the model directory's tokenizer.json makes the ids (the same as --prompt-ids
// of them gives) and the reply comes back as text; --chat sends a user turn in the template.
TEST_F(CliTest, TextPromptsAreTokenizedAndRepliesDecoded) {
  const fs::path dir = scratch_path("text_model");
  fs::remove_all(dir);
  ASSERT_EQ(run("make-checkpoint --arch qwen2 --preset tiny --config-only --out " + dir.string())
                .exit_code, 0);
  json config = json::parse(std::ifstream(dir / "config.json"));
  config["vocab_size"] = 1280;  // room for the fixture tokenizer's 1205 ids
  std::ofstream(dir / "config.json") << config.dump();
  const fs::path fixture =
      fs::path(MEGALITH_SOURCE_DIR) / "tests/tokenizer/fixtures/qwen2/tokenizer.json";
  fs::copy_file(fixture, dir / "tokenizer.json");
  auto tok = megalith::Tokenizer::load(fixture);
  ASSERT_TRUE(tok.ok()) << tok.status().message();

  const std::string base = "generate --model " + dir.string() +
                           " --random-weights --device cpu --max-new-tokens 6 --ignore-eos --json";
  const std::string text = "Hello world, naïve café!";
  const Result r = run(base + " --prompt '" + text + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = json::parse(r.out);
  const std::vector<int32_t> ids = tok->encode(text, /*add_special_tokens=*/true);
  EXPECT_EQ(j["prompt_tokens"], ids.size());
  const std::vector<int32_t> reply = j["tokens"];
  EXPECT_EQ(j["text"], tok->decode(reply, /*skip_special_tokens=*/true));
  std::string id_list;
  for (int32_t id : ids) id_list += (id_list.empty() ? "" : ",") + std::to_string(id);
  const Result by_ids = run(base + " --prompt-ids " + id_list);
  ASSERT_EQ(by_ids.exit_code, 0) << by_ids.err;
  EXPECT_EQ(json::parse(by_ids.out)["tokens"], j["tokens"]);

  const Result chat = run(base + " --chat --prompt 'Hi there'");
  ASSERT_EQ(chat.exit_code, 0) << chat.err;
  const std::vector<int32_t> chat_ids = tok->encode(
      "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n", /*add_special_tokens=*/false);
  EXPECT_EQ(json::parse(chat.out)["prompt_tokens"], chat_ids.size());

  // megalith chat: a turn per line, the reply streamed then a newline; the first turn is what
  // generate --chat says, the second sees the conversation, /reset starts over.
  const std::string flags =
      " --model " + dir.string() + " --random-weights --device cpu --max-new-tokens 6";
  const Result once = run("generate" + flags + " --chat --prompt 'Hi there'");
  ASSERT_EQ(once.exit_code, 0) << once.err;
  const fs::path turns = scratch_path("turns");
  std::ofstream(turns) << "Hi there\nAgain\n/reset\nHi there\n";
  const Result talk = run("chat" + flags + " < " + turns.string());
  fs::remove(turns);
  ASSERT_EQ(talk.exit_code, 0) << talk.err;
  ASSERT_GT(talk.out.size(), 2 * once.out.size());
  EXPECT_EQ(talk.out.substr(0, once.out.size()), once.out);
  EXPECT_EQ(talk.out.substr(talk.out.size() - once.out.size()), once.out);
  fs::remove_all(dir);
}

TEST_F(CliTest, EverySubcommandHasHelp) {
  for (const char* cmd :
       {"", "generate", "chat", "serve", "score", "make-checkpoint", "inspect", "bench", "trace"}) {
    const Result r = run(std::string(cmd) + " --help");
    EXPECT_EQ(r.exit_code, 0) << cmd;
    EXPECT_NE(r.out.find("--"), std::string::npos) << cmd;
  }
}

// --random-weights: the model directory needs only config.json, and the weights are the ones
// make-checkpoint writes for the same seed.
TEST_F(CliTest, RandomWeightsAreTheCheckpointsOfTheSameSeed) {
  const fs::path config_only = scratch_path("config_only");
  fs::remove_all(config_only);
  ASSERT_EQ(run("make-checkpoint --arch qwen3 --preset tiny --config-only --out " +
                config_only.string()).exit_code, 0);
  const std::string random = " --model " + config_only.string() + " --random-weights --weights-seed 3";
  for (const char* device : {"cpu", "ref"}) {
    const std::string gen = std::string(" --device ") + device + " --prompt-ids 5,6,7 --max-new-tokens 6 --json";
    const Result from_files = run("generate" + model() + gen);
    const Result from_seed = run("generate" + random + gen);
    ASSERT_EQ(from_files.exit_code, 0) << from_files.err;
    ASSERT_EQ(from_seed.exit_code, 0) << from_seed.err;
    EXPECT_EQ(json::parse(from_files.out)["tokens"], json::parse(from_seed.out)["tokens"]) << device;
    const std::string ids = std::string(" --device ") + device + " --ids 5,6,7,8,9 --json";
    const json a = json::parse(run("score" + model() + ids).out);
    const json b = json::parse(run("score" + random + ids).out);
    EXPECT_EQ(a["logprobs"], b["logprobs"]) << device;
  }
  const Result other_seed = run("generate --model " + config_only.string() +
                                " --random-weights --weights-seed 4 --prompt-ids 5,6,7 "
                                "--max-new-tokens 6 --json");
  ASSERT_EQ(other_seed.exit_code, 0) << other_seed.err;
  EXPECT_NE(json::parse(other_seed.out)["tokens"],
            json::parse(run("generate" + model() + " --prompt-ids 5,6,7 --max-new-tokens 6 --json").out)["tokens"]);
  fs::remove_all(config_only);
}

TEST_F(CliTest, InspectReportsTheTaskGraph) {
  const Result r = run("inspect" + model() + " --workers 4 --max-seq-len 64 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = json::parse(r.out);
  ASSERT_TRUE(j["tasks"].is_array());
  ASSERT_TRUE(j["events"].is_array());
  EXPECT_EQ(j["stats"]["tasks"], j["tasks"].size());
  EXPECT_EQ(j["num_workers"], 4);
  EXPECT_EQ(j["tasks"][0]["kind"], "embedding");
  EXPECT_GT(j["stats"]["critical_path_us"].get<double>(), 0);
  EXPECT_GT(j["stats"]["dependency_edges"].get<int64_t>(), 0);

  const Result text = run("inspect" + model() + " --workers 4");
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("critical path"), std::string::npos);
}

TEST_F(CliTest, InspectNeedsOnlyTheConfigAndWritesDotAndBinaryGraphs) {
  const fs::path dir = scratch_path("config_only");
  fs::remove_all(dir);
  ASSERT_EQ(run("make-checkpoint --arch llama --preset llama-3.2-1b --config-only --out " +
                dir.string()).exit_code, 0);
  EXPECT_FALSE(fs::exists(dir / "model.safetensors"));
  const fs::path dot = scratch_path("graph.dot"), saved = scratch_path("graph.mtg");
  const Result r = run("inspect --model " + dir.string() + " --workers 132 --dot " + dot.string() +
                       " --save " + saved.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("16 layers"), std::string::npos) << r.out;
  EXPECT_GT(fs::file_size(dot), 100u);
  EXPECT_GT(fs::file_size(saved), 100u);
  const Result bad = run("inspect --model " + dir.string() + " --workers 0");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("num_workers"), std::string::npos) << bad.err;
  fs::remove_all(dir);
  fs::remove(dot);
  fs::remove(saved);
}

TEST_F(CliTest, CompiledCpuMatchesTheReferenceForAnyThreadsAndSchedule) {
  const std::string args = "generate" + model() + " --prompt-ids 9,8,7 --max-new-tokens 12 --json";
  const Result ref = run(args + " --device ref");
  ASSERT_EQ(ref.exit_code, 0) << ref.err;
  const auto expected = json::parse(ref.out)["tokens"];
  // --workers 0 (the default) compiles for 132 workers off the GPU.
  for (const char* extra : {" --cpu-workers 1", " --cpu-workers 3 --schedule dynamic --shuffle-seed 5",
                            " --workers 5 --schedule dynamic", " --workers 0",
                            " --keys-per-split 2"}) {  // 8 attention splits and a merge
    const Result r = run(args + " --device cpu" + extra);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(json::parse(r.out)["tokens"], expected) << extra;
  }
  EXPECT_NE(run(args + " --schedule sideways").exit_code, 0);
  // The kernel-per-op ablation launches GPU kernels: on the CPU it is a one-line error.
  const Result per_op = run(args + " --device cpu --schedule kernel-per-op");
  EXPECT_NE(per_op.exit_code, 0);
  EXPECT_NE(per_op.err.find("--device cuda"), std::string::npos) << per_op.err;
  EXPECT_NE(run(args + " --cpu-workers -2").exit_code, 0);
  EXPECT_NE(run(args + " --workers -1").exit_code, 0);
}

}  // namespace
