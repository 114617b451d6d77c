// The OpenAI-compatible HTTP API over one model: GET /v1/models, POST /v1/completions and
// POST /v1/chat/completions, whole or streamed as server-sent events ("data: {chunk}" ...
// "data: [DONE]"). Requests are OpenAI's JSON; what megalith does not do (n > 1, logprobs,
// penalties, tools) is refused with a 400, never silently ignored. Every error is OpenAI's
// {"error": {"message", "type", "param", "code"}}.
//
// Requests go through a RequestQueue: batched over an executor's slots, or one at a time
// through a generate function; either way each gets exactly the result it would get alone.
//
//   OpenAiApi api(tokenizer, chat_template, *exec,
//                 {.model_name = "qwen3-tiny", .max_positions = 2048, .vocab_size = 1280});
//   MEGALITH_ASSIGN_OR_RETURN(auto server, HttpServer::listen("127.0.0.1", 8000, api));
//   server->serve();
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "megalith/engine/request_queue.h"
#include "megalith/server/http.h"
#include "megalith/tokenizer/chat_template.h"
#include "megalith/tokenizer/tokenizer.h"

namespace megalith {

struct OpenAiApiOptions {
  std::string model_name;              // the id in /v1/models and the "model" of every response
  int64_t max_positions = 0;           // KV-cache rows: prompt + max_tokens - 1 must fit
  int64_t vocab_size = 0;              // token ids in a prompt must be below it
  std::vector<int64_t> eos_token_ids;  // end every completion
  int64_t default_max_tokens = 16;     // of /v1/completions, as OpenAI's; chat fills the context
};

class OpenAiApi : public HttpHandler {
 public:
  // `chat` is empty when the tokenizer has no chat template; /v1/chat/completions then errs.
  // `tokenizer` must outlive the API.
  // Batched over `exec`'s slots; `exec` must outlive the API.
  OpenAiApi(const Tokenizer& tokenizer, std::optional<ChatTemplate> chat, Executor& exec,
            OpenAiApiOptions options);
  // One request at a time through `generate`.
  OpenAiApi(const Tokenizer& tokenizer, std::optional<ChatTemplate> chat,
            RequestQueue::GenerateFn generate, OpenAiApiOptions options);

  void handle(const HttpRequest& request, HttpResponse& response) override;
  std::string error_body(int status, std::string_view message) const override;
  // Ends the engine worker: the running request stops, waiting ones are answered 503.
  void stop() override;

 private:
  void complete(const HttpRequest& request, HttpResponse& response, bool chat);

  const Tokenizer& tokenizer_;
  std::optional<ChatTemplate> chat_;
  OpenAiApiOptions options_;
  std::string id_prefix_;  // random per server, so ids differ across restarts
  std::atomic<uint64_t> requests_{0};
  RequestQueue queue_;  // last: its worker stops before the rest goes away
};

}  // namespace megalith
