// megalith serve: the OpenAI-compatible HTTP API over one model (GET /v1/models,
// POST /v1/completions, POST /v1/chat/completions, streamed or whole), until SIGINT or SIGTERM.
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "cli.h"
#include "megalith/server/http.h"
#include "megalith/server/openai_api.h"
#include "megalith/tokenizer/chat_template.h"

namespace megalith::cli {

namespace {

struct ServeArgs {
  DeviceOptions device;
  std::string host = "127.0.0.1";
  int port = 8000;
  std::string model_name;
  int32_t batch = 0;  // 0: the device's default
};

// Requests decoded together by default. On the GPU every slot's input rows sit in each SM's
// shared memory, which two slots of Qwen3-8B's down projection fill (docs/megakernel.md).
constexpr int32_t kCpuBatch = 4, kCudaBatch = 2;

// The server a SIGINT or SIGTERM stops; HttpServer::stop() is async-signal-safe. A second
// signal while the server winds down (waiting for a generation) exits at once, as the user
// asked twice.
std::atomic<HttpServer*> signalled_server{nullptr};
std::atomic<bool> stop_requested{false};
extern "C" void stop_on_signal(int signal) {
  if (stop_requested.exchange(true)) _exit(128 + signal);
  if (HttpServer* server = signalled_server.load()) server->stop();
}

// Stops `server` on SIGINT and SIGTERM while it lives; a signal once serve() has returned gets
// the default action again.
class StopOnSignals {
 public:
  explicit StopOnSignals(HttpServer& server) {
    signalled_server = &server;
    struct sigaction action {};
    action.sa_handler = stop_on_signal;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, &old_int_);
    sigaction(SIGTERM, &action, &old_term_);
  }
  ~StopOnSignals() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
    signalled_server = nullptr;
  }
  StopOnSignals(const StopOnSignals&) = delete;
  StopOnSignals& operator=(const StopOnSignals&) = delete;

 private:
  struct sigaction old_int_ {
  }, old_term_{};
};

Status run(ServeArgs a) {
  MEGALITH_RETURN_IF_ERROR(check_device(a.device));
  if (a.port < 0 || a.port > 65535) {
    return invalid_argument("--port must be between 0 and 65535 (0: any free port), got {}",
                            a.port);
  }
  MEGALITH_ASSIGN_OR_RETURN(Model model, load_model(a.device));
  MEGALITH_ASSIGN_OR_RETURN(Tokenizer tokenizer, load_model_tokenizer(model));
  std::optional<ChatTemplate> chat;
  if (auto found = ChatTemplate::for_tokenizer(tokenizer, model.config.arch); found.ok()) {
    chat = std::move(*found);
  } else {
    fmt::print(stderr, "megalith serve: /v1/chat/completions is off: {}\n",
               found.status().message());
  }
  // The KV cache is compiled once, for the longest request the server takes.
  const int64_t positions = a.device.max_seq_len > 0
                                ? a.device.max_seq_len
                                : std::min<int64_t>(model.config.max_position_embeddings, 2048);
  if (a.batch < 0 || a.batch > 256) {
    return invalid_argument("--batch must be between 1 and 256 (0: the device's default), got {}",
                            a.batch);
  }
  const int32_t batch = a.batch > 0 ? a.batch : a.device.device == "cpu" ? kCpuBatch : kCudaBatch;
  MEGALITH_ASSIGN_OR_RETURN(auto runner, ModelRunner::create(a.device, model, positions, batch));
  if (a.model_name.empty()) {
    a.model_name = std::filesystem::weakly_canonical(model.dir).filename().string();
  }
  const OpenAiApiOptions api_options{.model_name = a.model_name,
                                     .max_positions = runner->max_positions(),
                                     .vocab_size = model.config.vocab_size,
                                     .eos_token_ids = model.config.eos_token_ids};
  std::optional<OpenAiApi> api;
  if (Executor* exec = runner->executor()) {
    api.emplace(tokenizer, std::move(chat), *exec, api_options);
  } else {
    api.emplace(tokenizer, std::move(chat),
                [&runner](std::span<const int32_t> prompt, const GenerationOptions& options,
                          const SamplingParams& sampling) {
                  return runner->generate(prompt, options, sampling);
                },
                api_options);
  }
  MEGALITH_ASSIGN_OR_RETURN(auto server, HttpServer::listen(a.host, a.port, *api));
  {
    StopOnSignals stop_on_signals(*server);
    const bool ipv6 = a.host.find(':') != std::string::npos;
    fmt::print(stderr,
               "megalith serve: listening on http://{}{}{}:{} (model '{}' on {}, {} positions, "
               "{} requests at a time); Ctrl-C stops\n",
               ipv6 ? "[" : "", a.host, ipv6 ? "]" : "", server->port(), a.model_name,
               a.device.device, runner->max_positions(), runner->executor() ? batch : 1);
    std::fflush(stderr);
    server->serve();
  }
  fmt::print(stderr, "megalith serve: stopped\n");
  return {};
}

}  // namespace

Command add_serve(CLI::App& app) {
  auto args = std::make_shared<ServeArgs>();
  CLI::App* cmd = app.add_subcommand(
      "serve", "An OpenAI-compatible HTTP API: /v1/models, /v1/completions, /v1/chat/completions");
  cmd->footer(
      "\nUp to --batch requests are decoded together (continuous batching: a request joins "
      "at the\nnext launch and gets the tokens it would get alone); later ones wait their turn.\n"
      "The KV cache holds --max-seq-len positions per request (default: the model's, at most "
      "2048);\na prompt and its max_tokens must fit.\n\n"
      "  curl http://127.0.0.1:8000/v1/completions -H 'Content-Type: application/json' \\\n"
      "       -d '{\"prompt\": \"Once upon a time\", \"max_tokens\": 32}'");
  add_device_options(*cmd, args->device);
  cmd->add_option("--host", args->host,
                  "address to listen on; the default takes connections from this machine only "
                  "(0.0.0.0: from anywhere, without authentication)")
      ->capture_default_str();
  cmd->add_option("--port", args->port,
                  "TCP port; 0 takes a free one (the startup line says which)")
      ->capture_default_str();
  cmd->add_option("--batch", args->batch,
                  "requests decoded together; 0: 4 on --device cpu, 2 on cuda (1 gives a lone "
                  "request the shortest steps); --device ref runs one at a time")
      ->capture_default_str();
  cmd->add_option("--served-model-name", args->model_name,
                  "the model's id in the API; default: the model directory's name");
  return {cmd, [args] { return run(*args); }};
}

}  // namespace megalith::cli
