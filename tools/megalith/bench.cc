// megalith bench: decode speed on the GPU against the memory-bandwidth floor and the peers.
//
// --batch sequences (1 by default), each a prompt of --prompt-len tokens, then --new-tokens
// generated in one launch; ms_per_token is the time of a step, which gives every sequence a
// token. In the same run: the GPU's streaming-read bandwidth, the floor (weight bytes one step reads / that
// bandwidth; floor_with_kv_ms adds the KV cache the steps read, which long contexts need) and,
// through bench/hf_peers.py, Hugging Face transformers decoding the same weights eagerly and
// with torch.compile. Appends one record to --out.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "cli.h"
#include "megalith/model/random_checkpoint.h"

#if MEGALITH_HAS_CUDA
#include "megalith/compiler/task_graph_stats.h"
#include "megalith/runtime/gpu_info.h"
#endif

namespace megalith::cli {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct BenchArgs {
  DeviceOptions device;
  std::string preset, name, out = "bench/results/decode.json";
  std::string peers_script = "bench/hf_peers.py";
  int64_t prompt_len = 32, new_tokens = 128, runs = 5;
  int32_t batch = 1;
  bool no_peers = false, no_record = false, json = false;
};

#if MEGALITH_HAS_CUDA
// Runs `command` and returns what it printed, or an error with its exit status.
StatusOr<std::string> capture(const std::string& command) {
  std::unique_ptr<FILE, decltype(&pclose)> pipe(popen(command.c_str(), "r"), &pclose);
  if (!pipe) return io_error("cannot run {}", command);
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof(buf), pipe.get())) out.append(buf, n);
  const int status = pclose(pipe.release());
  if (status != 0) return io_error("`{}` failed (status {})", command, status);
  return out;
}

std::string commit_id() {
  if (const char* env = std::getenv("MEGALITH_COMMIT"); env && *env) return env;
  StatusOr<std::string> out = capture("git rev-parse --short HEAD 2>/dev/null");
  if (!out.ok() || out->empty()) return "unknown";
  return out->substr(0, out->find('\n'));
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

Status append_record(const std::string& path, const nlohmann::json& record) {
  nlohmann::json records = nlohmann::json::array();
  if (fs::exists(path)) {
    std::ifstream in(path);
    records = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (!records.is_array()) return invalid_argument("{} is not a JSON array of records", path);
  }
  records.push_back(record);
  if (fs::path(path).has_parent_path()) fs::create_directories(fs::path(path).parent_path());
  std::ofstream out(path);
  out << records.dump(2) << "\n";
  if (!out) return io_error("{}: write failed", path);
  return {};
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}
#endif

Status run(BenchArgs a) {
  if (a.device.device != "cuda") {
    return invalid_argument("bench measures the megakernel: it needs --device cuda");
  }
  MEGALITH_RETURN_IF_ERROR(check_device(a.device));
  if (a.prompt_len < 1 || a.prompt_len > 65536 || a.new_tokens < 2 || a.new_tokens > 65536) {
    return invalid_argument("--prompt-len must be 1..65536 and --new-tokens 2..65536");
  }
  if (a.runs < 1 || a.runs > 1000) return invalid_argument("--runs must be 1..1000");
  if (a.batch < 1 || a.batch > 256) return invalid_argument("--batch must be 1..256");
#if !MEGALITH_HAS_CUDA
  return unimplemented("this megalith was built without nvcc");
#else
  // A preset becomes a config-only model directory with random weights: what the peers load.
  std::unique_ptr<PresetModel> preset;
  if (!a.preset.empty()) {
    MEGALITH_ASSIGN_OR_RETURN(preset, PresetModel::create(a.preset, a.device, &a.name));
  }
  MEGALITH_ASSIGN_OR_RETURN(Model model, load_model(a.device));
  if (a.name.empty()) a.name = fs::path(model.dir).filename().string();

  MEGALITH_ASSIGN_OR_RETURN(GpuInfo gpu, gpu_info(0));
  MEGALITH_ASSIGN_OR_RETURN(double read_bytes_per_s, measure_read_bandwidth(0));
  fmt::print(stderr, "{}: {} SMs, streaming read {:.2f} TB/s\n", gpu.name, gpu.sms,
             read_bytes_per_s / 1e12);

  const auto setup_start = Clock::now();
  MEGALITH_ASSIGN_OR_RETURN(auto exec,
                            make_executor(a.device, model, a.prompt_len + a.new_tokens - 1,
                                          a.batch));
  const double setup_s = std::chrono::duration<double>(Clock::now() - setup_start).count();
  const uint64_t step_bytes = step_weight_bytes(exec->task_graph());
  const double floor_ms = double(step_bytes) / read_bytes_per_s * 1e3;
  // The timed steps sit at positions prompt_len .. prompt_len + new_tokens - 2; on average
  // each attends over prompt_len + new_tokens / 2 cached positions.
  // (kv_cache_bytes_per_position counts every slot's cache.)
  const uint64_t kv_read_bytes = kv_cache_bytes_per_position(exec->task_graph()) *
                                 uint64_t(a.prompt_len + a.new_tokens / 2);
  const double floor_with_kv_ms = double(step_bytes + kv_read_bytes) / read_bytes_per_s * 1e3;

  std::vector<int32_t> prompt(size_t(a.prompt_len));
  for (int64_t i = 0; i < a.prompt_len; ++i) {
    prompt[size_t(i)] = int32_t((i + 1) % model.config.vocab_size);
  }
  std::vector<double> prefill_ms, decode_ms;
  for (int64_t r = 0; r <= a.runs; ++r) {  // run 0 warms up
    for (int32_t slot = 0; slot < a.batch; ++slot) {
      MEGALITH_RETURN_IF_ERROR(exec->start_sequence(prompt, 0.0, 0, slot));
    }
    auto t0 = Clock::now();
    MEGALITH_RETURN_IF_ERROR(exec->run(a.prompt_len));
    auto t1 = Clock::now();
    MEGALITH_RETURN_IF_ERROR(exec->run(a.new_tokens - 1));  // one launch
    auto t2 = Clock::now();
    if (r == 0) continue;
    prefill_ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    decode_ms.push_back(std::chrono::duration<double, std::milli>(t2 - t1).count() /
                        double(a.new_tokens - 1));
  }
  const double ms_per_token = median(decode_ms);
  fmt::print(stderr, "{}: {:.3f} ms/token, floor {:.3f} ms ({:.1f} MB a step): {:.1f}% of the "
             "floor (set-up {:.1f} s)\n", a.name, ms_per_token, floor_ms, double(step_bytes) / 1e6,
             100 * floor_ms / ms_per_token, setup_s);
  if (a.batch > 1) {
    fmt::print(stderr, "{}: batch {}: {:.0f} tokens/s\n", a.name, a.batch,
               1e3 * a.batch / ms_per_token);
  }
  fmt::print(stderr, "{}: with the {:.1f} MB of KV cache a step reads, floor {:.3f} ms: {:.1f}%\n",
             a.name, double(kv_read_bytes) / 1e6, floor_with_kv_ms,
             100 * floor_with_kv_ms / ms_per_token);

  nlohmann::json record = {
      {"model", a.name},
      {"gpu", gpu.name},
      {"commit", commit_id()},
      {"date", utc_now()},
      {"batch", a.batch},
      {"tokens_per_s", 1e3 * a.batch / ms_per_token},
      {"tp", 1},
      {"mode", a.device.schedule == "kernel-per-op" ? "kernel-per-op" : "megakernel"},
      {"schedule", a.device.schedule},
      {"workers", exec->task_graph().num_workers},
      {"dtype", dtype_short_name(model.config.dtype)},
      {"weights", model.checkpoint ? "checkpoint" : fmt::format("random seed {}", a.device.weights_seed)},
      {"prompt_tokens", a.prompt_len},
      {"new_tokens", a.new_tokens},
      {"ms_per_token", ms_per_token},
      {"ms_per_token_runs", decode_ms},
      {"prefill_ms", median(prefill_ms)},
      {"read_TBps", read_bytes_per_s / 1e12},
      {"step_weight_bytes", step_bytes},
      {"floor_ms", floor_ms},
      {"fraction_of_floor", floor_ms / ms_per_token},
      {"kv_read_bytes", kv_read_bytes},
      {"floor_with_kv_ms", floor_with_kv_ms},
      {"fraction_of_floor_with_kv", floor_with_kv_ms / ms_per_token},
      {"hf_eager_ms", nullptr},
      {"hf_compiled_ms", nullptr},
  };
  if (a.device.keys_per_split > 0) record["keys_per_split"] = a.device.keys_per_split;
  exec.reset();  // the peers get the whole GPU
  // The peers decode one sequence.
  if (!a.no_peers && a.batch == 1) {
    std::string command = fmt::format("python3 {} --model {} --prompt-len {} --new-tokens {}",
                                      a.peers_script, model.dir, a.prompt_len, a.new_tokens);
    if (!model.checkpoint) command += fmt::format(" --seed {}", a.device.weights_seed);
    fmt::print(stderr, "peers: {}\n", command);
    // A failed peer is reported in the record and on stderr; the megakernel's figures stand.
    StatusOr<std::string> out = capture(command);
    const nlohmann::json peers =
        out.ok() ? nlohmann::json::parse(*out, nullptr, false) : nlohmann::json();
    if (!peers.is_object()) {
      record["peers_error"] = out.ok() ? "the peers printed no JSON object" : out.status().message();
      fmt::print(stderr, "peers failed: {}\n", record["peers_error"].get<std::string>());
    } else {
      for (const char* key : {"hf_eager_ms", "hf_compiled_ms", "hf_compiled_error", "torch",
                              "transformers"}) {
        if (peers.contains(key)) record[key] = peers[key];
      }
    }
    fmt::print(stderr, "peers: transformers eager {} ms/token, torch.compile {} ms/token\n",
               record["hf_eager_ms"].dump(), record["hf_compiled_ms"].dump());
  }
  if (!a.no_record) MEGALITH_RETURN_IF_ERROR(append_record(a.out, record));
  if (a.json) fmt::print("{}\n", record.dump());
  return {};
#endif
}

}  // namespace

Command add_bench(CLI::App& app) {
  auto args = std::make_shared<BenchArgs>();
  args->device.device = "cuda";
  CLI::App* cmd = app.add_subcommand(
      "bench", "Decode speed on the GPU against the bandwidth floor and Hugging Face peers");
  add_device_options(*cmd, args->device);
  cmd->add_option("--preset", args->preset,
                  "a model preset (qwen3-8b, llama-3.2-1b, qwen3:tiny, ...) with random weights "
                  "made on the GPU, instead of --model");
  cmd->add_option("--name", args->name, "the record's model name; default: preset or directory");
  cmd->add_option("--prompt-len", args->prompt_len, "prompt tokens")->capture_default_str();
  cmd->add_option("--new-tokens", args->new_tokens, "tokens generated, in one launch")
      ->capture_default_str();
  cmd->add_option("--batch", args->batch,
                  "sequences decoded together (the peers run only at batch 1)")
      ->capture_default_str();
  cmd->add_option("--runs", args->runs, "timed runs (the median is reported)")
      ->capture_default_str();
  cmd->add_option("--out", args->out, "JSON array the record is appended to")
      ->capture_default_str();
  cmd->add_option("--peers-script", args->peers_script, "the Hugging Face peers' script")
      ->capture_default_str();
  cmd->add_flag("--no-peers", args->no_peers, "skip the Hugging Face peers");
  cmd->add_flag("--no-record", args->no_record, "append nothing to --out");
  cmd->add_flag("--json", args->json, "print the record as one JSON object");
  return {cmd, [args] { return run(*args); }};
}

}  // namespace megalith::cli
