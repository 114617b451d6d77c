// The body of an OpenAI completion or chat completion request, read and checked: every field
// megalith uses has the right type and range, the prompt is tokenized and fits the KV cache,
// and fields megalith cannot honour are refused rather than ignored.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "megalith/engine/generation.h"
#include "megalith/server/openai_api.h"
#include "megalith/tokenizer/chat_template.h"
#include "megalith/tokenizer/tokenizer.h"

namespace megalith::openai {

// An error as OpenAI reports it: {"error": {"message", "type", "param", "code"}}.
struct ApiError {
  int status = 400;
  std::string message;
  std::string param;  // the request field at fault; empty: null
  std::string code;   // a machine-readable reason; empty: null
};
std::string error_json(const ApiError& error);

struct Completion {
  bool chat = false;
  std::vector<int32_t> prompt;
  int64_t max_tokens = 0;
  SamplingParams sampling;
  std::vector<int64_t> stop_token_ids;
  std::vector<std::string> stop;  // stop strings, none empty
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage: a last chunk with the usage
};

struct ModelContext {
  const Tokenizer& tokenizer;
  const ChatTemplate* chat;  // null: the model has no chat template
  const OpenAiApiOptions& options;
};

std::optional<ApiError> parse_completion(std::string_view body, bool chat,
                                         const ModelContext& model, Completion& out);

}  // namespace megalith::openai
