// megalith generate: continue a prompt, given as text (tokenized with the model's
// tokenizer.json, optionally as a chat turn) or as token ids.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <optional>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "megalith/engine/generation.h"
#include "megalith/model/checkpoint.h"
#include "megalith/tokenizer/chat_template.h"
#include "megalith/tokenizer/tokenizer.h"

namespace megalith::cli {

namespace {
struct GenerateArgs {
  DeviceOptions device;
  std::string prompt, prompt_ids;
  bool chat = false;
  int64_t max_new_tokens = 32;
  SamplingParams sampling;
  bool ignore_eos = false;
  bool json = false;
};

Status run(const GenerateArgs& a) {
  MEGALITH_RETURN_IF_ERROR(check_device(a.device));
  MEGALITH_RETURN_IF_ERROR(validate(a.sampling));
  if (a.max_new_tokens < 0 || a.max_new_tokens > 1'000'000) {
    return invalid_argument("--max-new-tokens must be between 0 and 1000000, got {}",
                            a.max_new_tokens);
  }
  if (a.prompt_ids.empty() == a.prompt.empty()) {
    return invalid_argument("give the prompt as --prompt TEXT or as --prompt-ids 1,2,3");
  }
  if (a.chat && a.prompt.empty()) return invalid_argument("--chat formats a --prompt TEXT");
  MEGALITH_ASSIGN_OR_RETURN(Model model, load_model(a.device));
  const std::string& dir = model.dir;
  std::vector<int32_t> prompt;
  std::optional<Tokenizer> tokenizer;
  std::optional<ChatTemplate> chat;
  if (a.prompt_ids.empty()) {
    MEGALITH_ASSIGN_OR_RETURN(tokenizer, load_model_tokenizer(model));
    if (a.chat) {
      MEGALITH_ASSIGN_OR_RETURN(chat, ChatTemplate::for_tokenizer(*tokenizer, model.config.arch));
      const ChatMessage turn{"user", a.prompt};
      MEGALITH_ASSIGN_OR_RETURN(std::string text, chat->format({&turn, 1}));
      prompt = tokenizer->encode(text, /*add_special_tokens=*/false);
    } else {
      prompt = tokenizer->encode(a.prompt, /*add_special_tokens=*/true);
    }
    if (prompt.empty()) return invalid_argument("--prompt gives no tokens");
  } else {
    MEGALITH_ASSIGN_OR_RETURN(prompt, parse_ids(a.prompt_ids, "--prompt-ids"));
  }
  GenerationOptions options{a.max_new_tokens, {}};
  if (!a.ignore_eos) options.stop_token_ids = stop_token_ids(model.config, chat ? &*chat : nullptr);
  // Text comes out as it is generated, whole characters at a time.
  std::optional<StreamDecoder> stream;
  if (tokenizer && !a.json) {
    stream.emplace(*tokenizer, /*skip_special_tokens=*/true);
    options.on_token = [&stream](int32_t id) {
      fmt::print("{}", stream->add(id));
      std::fflush(stdout);
    };
  }
  const int64_t positions = int64_t(prompt.size()) + std::max<int64_t>(a.max_new_tokens - 1, 0);
  MEGALITH_ASSIGN_OR_RETURN(auto runner, ModelRunner::create(a.device, model, positions));
  MEGALITH_ASSIGN_OR_RETURN(GenerationResult r, runner->generate(prompt, options, a.sampling));

  const double ms_per_token = r.tokens.size() > 1 ? r.decode_ms / double(r.tokens.size() - 1) : 0;
  if (a.json) {
    nlohmann::json out = {{"tokens", r.tokens},
                          {"text", tokenizer ? nlohmann::json(tokenizer->decode(r.tokens, true))
                                             : nlohmann::json()},
                          {"prompt_tokens", prompt.size()},
                          {"finish_reason", r.finish_reason},
                          {"device", a.device.device},
                          {"model", dir},
                          {"prefill_ms", r.prefill_ms},
                          {"decode_ms", r.decode_ms},
                          {"ms_per_token", ms_per_token}};
    fmt::print("{}\n", out.dump());
  } else {
    if (stream) {
      fmt::print("{}\n", stream->flush());
    } else {
      fmt::print("{}\n", fmt::join(r.tokens, ","));
    }
    std::fflush(stdout);  // the reply's last line before the statistics on stderr
    fmt::print(stderr, "{} tokens ({}), prefill {:.1f} ms, {:.2f} ms/token on {}\n",
               r.tokens.size(), r.finish_reason, r.prefill_ms, ms_per_token, a.device.device);
  }
  return {};
}
}  // namespace

Command add_generate(CLI::App& app) {
  auto args = std::make_shared<GenerateArgs>();
  CLI::App* cmd = app.add_subcommand("generate", "Continue a prompt given as text or token ids");
  add_device_options(*cmd, args->device);
  cmd->add_option("--prompt", args->prompt,
                  "prompt text, tokenized with the model's tokenizer.json; prints text");
  cmd->add_option("--prompt-ids", args->prompt_ids, "prompt token ids, e.g. 1,2,3");
  cmd->add_flag("--chat", args->chat,
                "send --prompt as a user turn in the model's chat template (Llama-3 or ChatML) "
                "and stop at the end of the reply");
  cmd->add_option("--max-new-tokens", args->max_new_tokens, "tokens to generate")
      ->capture_default_str();
  add_sampling_options(*cmd, args->sampling);
  cmd->add_flag("--ignore-eos", args->ignore_eos, "keep generating past end-of-sequence tokens");
  cmd->add_flag("--json", args->json,
                "print one JSON object: {\"tokens\": [...], \"text\": ..., ...}");
  return {cmd, [args] { return run(*args); }};
}

}  // namespace megalith::cli
