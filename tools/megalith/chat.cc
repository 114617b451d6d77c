// megalith chat: an interactive conversation. Each line read is a user turn; the reply streams
// out as it is generated, in the model's chat template (Llama-3 or ChatML). "/reset" starts
// over, "/exit" or the end of input leaves.
#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "cli.h"
#include "megalith/engine/generation.h"
#include "megalith/tokenizer/chat_template.h"
#include "megalith/tokenizer/tokenizer.h"

namespace megalith::cli {

namespace {

struct ChatArgs {
  DeviceOptions device;
  std::string system;
  int64_t max_new_tokens = 256;
  SamplingParams sampling;
};

Status run(ChatArgs a) {
  MEGALITH_RETURN_IF_ERROR(check_device(a.device));
  MEGALITH_RETURN_IF_ERROR(validate(a.sampling));
  if (a.max_new_tokens < 1 || a.max_new_tokens > 1'000'000) {
    return invalid_argument("--max-new-tokens must be between 1 and 1000000, got {}",
                            a.max_new_tokens);
  }
  if (a.device.max_seq_len == 0) a.device.max_seq_len = 2048;
  MEGALITH_ASSIGN_OR_RETURN(Model model, load_model(a.device));
  MEGALITH_ASSIGN_OR_RETURN(Tokenizer tokenizer, load_model_tokenizer(model));
  MEGALITH_ASSIGN_OR_RETURN(ChatTemplate chat,
                            ChatTemplate::for_tokenizer(tokenizer, model.config.arch));
  GenerationOptions options{a.max_new_tokens, stop_token_ids(model.config, &chat)};
  MEGALITH_ASSIGN_OR_RETURN(auto runner, ModelRunner::create(a.device, model, a.device.max_seq_len));
  const bool interactive = isatty(STDIN_FILENO) != 0;
  std::vector<ChatMessage> messages;
  if (!a.system.empty()) messages.push_back({"system", a.system});
  const size_t kept = messages.size();
  std::string line;
  while (true) {
    if (interactive) fmt::print(stderr, "> ");
    if (!std::getline(std::cin, line) || line == "/exit") break;
    if (line == "/reset") {
      messages.resize(kept);
      continue;
    }
    if (line.empty()) continue;
    messages.push_back({"user", line});
    MEGALITH_ASSIGN_OR_RETURN(std::string text, chat.format(messages));
    const std::vector<int32_t> prompt = tokenizer.encode(text, /*add_special_tokens=*/false);
    if (int64_t(prompt.size()) + a.max_new_tokens - 1 > a.device.max_seq_len) {
      messages.pop_back();
      fmt::print(stderr, "the conversation no longer fits {} positions: /reset, or restart with "
                 "a larger --max-seq-len\n", a.device.max_seq_len);
      continue;
    }
    StreamDecoder stream(tokenizer, /*skip_special_tokens=*/true);
    std::string reply;
    options.on_token = [&](int32_t id) {
      const std::string piece = stream.add(id);
      reply += piece;
      fmt::print("{}", piece);
      std::fflush(stdout);
    };
    MEGALITH_RETURN_IF_ERROR(runner->generate(prompt, options, a.sampling).status());
    const std::string rest = stream.flush();
    reply += rest;
    fmt::print("{}\n", rest);
    std::fflush(stdout);
    messages.push_back({"assistant", reply});
  }
  return {};
}

}  // namespace

Command add_chat(CLI::App& app) {
  auto args = std::make_shared<ChatArgs>();
  CLI::App* cmd = app.add_subcommand(
      "chat", "Talk with a model: each input line is a turn, replies stream as they come");
  add_device_options(*cmd, args->device);
  cmd->add_option("--system", args->system, "a system message first");
  cmd->add_option("--max-new-tokens", args->max_new_tokens, "longest reply, in tokens")
      ->capture_default_str();
  add_sampling_options(*cmd, args->sampling);
  return {cmd, [args] { return run(*args); }};
}

}  // namespace megalith::cli
