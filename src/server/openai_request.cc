#include "openai_request.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <random>

#include "megalith/core/json_depth.h"

namespace megalith::openai {

namespace {

using json = nlohmann::json;

ApiError bad(std::string param, std::string message, std::string code = "") {
  return {400, std::move(message), std::move(param), std::move(code)};
}

// Reads the optional fields of a request object: absent and null mean "the default". The first
// problem found is kept in `error`; later reads then return their defaults.
class Fields {
 public:
  explicit Fields(const json& body) : body_(body) {}

  const json* get(const char* name) const {
    const auto it = body_.find(name);
    return it == body_.end() || it->is_null() ? nullptr : &*it;
  }
  bool boolean(const char* name, bool fallback) {
    const json* v = get(name);
    if (!v) return fallback;
    if (!v->is_boolean()) {
      wrong_type(name, "a boolean");
      return fallback;
    }
    return v->get<bool>();
  }
  double number(const char* name, double fallback) {
    const json* v = get(name);
    if (!v) return fallback;
    if (!v->is_number()) {
      wrong_type(name, "a number");
      return fallback;
    }
    return v->get<double>();
  }
  std::optional<int64_t> integer(const char* name) {
    const json* v = get(name);
    if (!v) return std::nullopt;
    if (!v->is_number_integer()) {
      wrong_type(name, "an integer");
      return std::nullopt;
    }
    if (v->is_number_unsigned() && v->get<uint64_t>() > uint64_t(INT64_MAX)) {
      fail(bad(name, fmt::format("{} is too large", name)));
      return std::nullopt;
    }
    return v->get<int64_t>();
  }
  void fail(ApiError e) {
    if (!error) error = std::move(e);
  }

  std::optional<ApiError> error;

 private:
  void wrong_type(const char* name, const char* expected) {
    fail(bad(name,
             fmt::format("{} must be {}, not {}", name, expected, body_.at(name).type_name())));
  }
  const json& body_;
};

// Fields megalith cannot honour: refused unless they hold the value that asks for nothing.
void refuse_unsupported(Fields& f) {
  static const std::pair<const char*, json> kNeutral[] = {
      {"n", 1},
      {"best_of", 1},
      {"echo", false},
      {"logprobs", false},
      {"top_logprobs", 0},
      {"presence_penalty", 0},
      {"frequency_penalty", 0},
      {"logit_bias", json::object()},
      {"suffix", ""},
      {"tools", json::array()},
  };
  for (const auto& [name, neutral] : kNeutral) {
    const json* v = f.get(name);
    if (v && *v != neutral) {
      f.fail(bad(name, fmt::format("{} = {} is not supported by megalith (only {})", name,
                                   v->dump(-1, ' ', false, json::error_handler_t::replace),
                                   neutral.dump())));
    }
  }
}

std::vector<std::string> read_stop(Fields& f) {
  const json* v = f.get("stop");
  if (!v) return {};
  std::vector<std::string> stops;
  if (v->is_string()) {
    stops.push_back(v->get<std::string>());
  } else if (v->is_array() && v->size() <= 4) {
    for (const json& s : *v) {
      if (!s.is_string()) {
        f.fail(bad("stop", "stop must be a string or a list of strings"));
        return {};
      }
      stops.push_back(s.get<std::string>());
    }
  } else {
    f.fail(bad("stop", "stop must be a string or a list of at most 4 strings"));
    return {};
  }
  for (const std::string& s : stops) {
    if (s.empty()) f.fail(bad("stop", "stop strings must not be empty"));
  }
  return stops;
}

bool is_id_list(const json& v) {
  if (!v.is_array() || v.empty()) return false;
  for (const json& id : v) {
    if (!id.is_number_integer()) return false;
  }
  return true;
}

// "prompt": a string, a list of token ids, or a list holding one of those.
std::vector<int32_t> read_prompt(Fields& f, const ModelContext& model) {
  const json* v = f.get("prompt");
  if (!v) {
    f.fail(bad("prompt", "prompt is required"));
    return {};
  }
  if (v->is_array() && v->size() == 1 && ((*v)[0].is_string() || is_id_list((*v)[0]))) {
    v = &(*v)[0];
  }
  if (v->is_string()) return model.tokenizer.encode(v->get<std::string>(), true);
  if (!is_id_list(*v)) {
    f.fail(bad("prompt", v->is_array() && v->size() > 1 && (*v)[0].is_string()
                             ? "megalith serves one prompt per request"
                             : "prompt must be a string or a list of token ids"));
    return {};
  }
  std::vector<int32_t> ids;
  for (const json& id : *v) {
    const bool fits = id.is_number_unsigned()
                          ? id.get<uint64_t>() < uint64_t(model.options.vocab_size)
                          : id.get<int64_t>() >= 0 && id.get<int64_t>() < model.options.vocab_size;
    if (!fits) {
      f.fail(bad("prompt", fmt::format("token id {} is outside the vocabulary [0, {})", id.dump(),
                                       model.options.vocab_size)));
      return {};
    }
    ids.push_back(id.get<int32_t>());
  }
  return ids;
}

// "messages": [{"role": "user", "content": "..." or [{"type": "text", "text": "..."}]}, ...]
std::vector<int32_t> read_messages(Fields& f, const ModelContext& model) {
  const json* v = f.get("messages");
  if (!v || !v->is_array() || v->empty()) {
    f.fail(bad("messages", "messages must be a non-empty list"));
    return {};
  }
  if (!model.chat) {
    f.fail(bad("messages", "this model's tokenizer has no chat template; use /v1/completions"));
    return {};
  }
  std::vector<ChatMessage> messages;
  for (const json& m : *v) {
    const auto role = m.is_object() ? m.find("role") : m.end();
    if (!m.is_object() || role == m.end() || !role->is_string()) {
      f.fail(bad("messages", "each message must be an object with a string role"));
      return {};
    }
    ChatMessage& message = messages.emplace_back(ChatMessage{role->get<std::string>(), ""});
    const auto content = m.find("content");
    if (content == m.end() || content->is_null()) continue;
    if (content->is_string()) {
      message.content = content->get<std::string>();
      continue;
    }
    if (!content->is_array()) {
      f.fail(bad("messages", "a message's content must be a string or a list of parts"));
      return {};
    }
    for (const json& part : *content) {
      if (!part.is_object() || part.value("type", json()) != "text" || !part.contains("text") ||
          !part["text"].is_string()) {
        f.fail(bad("messages", "only text content parts are supported"));
        return {};
      }
      message.content += part["text"].get<std::string>();
    }
  }
  StatusOr<std::string> text = model.chat->format(messages);
  if (!text.ok()) {
    f.fail(bad("messages", text.status().message()));
    return {};
  }
  return model.tokenizer.encode(*text, /*add_special_tokens=*/false);
}

constexpr int kMaxJsonDepth = 64;

}  // namespace

std::string error_json(const ApiError& e) {
  const json error = {{"message", e.message},
                      {"type", e.status >= 500 ? "server_error" : "invalid_request_error"},
                      {"param", e.param.empty() ? json() : json(e.param)},
                      {"code", e.code.empty() ? json() : json(e.code)}};
  // Messages may quote the request's bytes: whatever they hold, the answer is valid JSON.
  return json{{"error", error}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::optional<ApiError> parse_completion(std::string_view text, bool chat,
                                         const ModelContext& model, Completion& out) {
  if (json_nests_deeper_than(text, kMaxJsonDepth)) {
    return bad("", fmt::format("the request body nests more than {} levels deep", kMaxJsonDepth));
  }
  const json body = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) return bad("", "the request body is not valid JSON");
  if (!body.is_object()) return bad("", "the request body must be a JSON object");
  const OpenAiApiOptions& options = model.options;
  Fields f(body);
  if (const json* name = f.get("model")) {
    if (!name->is_string()) return bad("model", "model must be a string");
    if (*name != options.model_name) {
      return ApiError{404,
                      fmt::format("the model '{}' does not exist; this server serves '{}'",
                                  name->get<std::string>(), options.model_name),
                      "model", "model_not_found"};
    }
  }
  refuse_unsupported(f);
  out.chat = chat;
  out.stream = f.boolean("stream", false);
  if (const json* so = f.get("stream_options")) {
    if (!so->is_object()) return bad("stream_options", "stream_options must be an object");
    Fields stream_options(*so);
    out.include_usage = stream_options.boolean("include_usage", false);
    if (stream_options.error) return stream_options.error;
  }
  // OpenAI's defaults: temperature 1, and a fresh seed for every request.
  out.sampling.temperature = f.number("temperature", 1.0);
  if (!(out.sampling.temperature >= 0 && out.sampling.temperature <= 2)) {
    f.fail(bad("temperature", "temperature must be between 0 and 2"));
  }
  out.sampling.top_p = f.number("top_p", 1.0);
  if (!(out.sampling.top_p > 0 && out.sampling.top_p <= 1)) {
    f.fail(bad("top_p", "top_p must be greater than 0 and at most 1"));
  }
  // top_k is not OpenAI's but many servers take it; -1 or 0 keeps every token.
  const int64_t top_k = f.integer("top_k").value_or(0);
  if (top_k < -1) f.fail(bad("top_k", "top_k must be -1, 0 or positive"));
  out.sampling.top_k = std::max<int64_t>(top_k, 0);
  if (const json* seed = f.get("seed")) {
    if (!seed->is_number_integer()) return bad("seed", "seed must be an integer");
    out.sampling.seed =
        seed->is_number_unsigned() ? seed->get<uint64_t>() : uint64_t(seed->get<int64_t>());
  } else {
    out.sampling.seed = std::random_device()() | uint64_t(std::random_device()()) << 32;
  }
  const char* max_field =
      chat && f.get("max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  const std::optional<int64_t> max_tokens = f.integer(max_field);
  if (max_tokens && (*max_tokens < 1 || *max_tokens > options.max_positions)) {
    f.fail(bad(max_field, fmt::format("{} must be between 1 and {} (the context this server "
                                      "holds), got {}",
                                      max_field, options.max_positions, *max_tokens)));
  }
  out.stop = read_stop(f);
  if (f.error) return f.error;

  out.prompt = chat ? read_messages(f, model) : read_prompt(f, model);
  if (f.error) return f.error;
  const char* prompt_field = chat ? "messages" : "prompt";
  if (out.prompt.empty()) return bad(prompt_field, "the prompt gives no tokens");
  const int64_t room = options.max_positions - int64_t(out.prompt.size()) + 1;
  if (room < 1) {
    return bad(prompt_field,
               fmt::format("the prompt has {} tokens; this server's context holds "
                           "{}",
                           out.prompt.size(), options.max_positions),
               "context_length_exceeded");
  }
  if (max_tokens && *max_tokens > room) {
    return bad(max_field,
               fmt::format("{} prompt tokens and {} = {} need {} positions; this "
                           "server's context holds {}",
                           out.prompt.size(), max_field, *max_tokens,
                           out.prompt.size() + *max_tokens - 1, options.max_positions),
               "context_length_exceeded");
  }
  out.max_tokens = max_tokens ? *max_tokens
                   : chat     ? room
                              : std::min(options.default_max_tokens, room);
  out.stop_token_ids = options.eos_token_ids;
  if (chat) {
    for (int32_t id : model.chat->stop_token_ids()) out.stop_token_ids.push_back(id);
  }
  return std::nullopt;
}

}  // namespace megalith::openai
