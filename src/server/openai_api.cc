#include "megalith/server/openai_api.h"

#include <fmt/format.h>

#include <chrono>
#include <ctime>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>

#include "megalith/core/logging.h"
#include "megalith/server/text_stream.h"
#include "openai_request.h"

namespace megalith {

namespace {

using json = nlohmann::json;
using openai::ApiError;
using openai::Completion;

constexpr std::string_view kJson = "application/json";

// Generated text is whole UTF-8 characters, but messages may quote request bytes.
std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

void send_error(HttpResponse& response, const ApiError& error) {
  response.send(error.status, kJson, openai::error_json(error));
}

ApiError engine_error(const Status& status) {
  const int http = status.code() == StatusCode::kInvalidArgument ? 400
                   : status.code() == StatusCode::kUnavailable   ? 503
                                                                 : 500;
  return {http, status.message(), "", ""};
}

// The fields every response and chunk of one request share.
struct Envelope {
  std::string id;
  std::string model;
  int64_t created;
  bool chat;

  json object(std::string_view kind, json choices) const {
    return {{"id", id},
            {"object", kind},
            {"created", created},
            {"model", model},
            {"choices", std::move(choices)}};
  }
  // One streamed chunk: the text `piece` (and the role first), or the finish reason last.
  std::string chunk(const std::string& piece, const json& finish_reason, bool first) const {
    json choice = {{"index", 0}, {"logprobs", nullptr}, {"finish_reason", finish_reason}};
    if (!chat) {
      choice["text"] = piece;
      return dump(object("text_completion", json::array({choice})));
    }
    choice["delta"] = json::object();
    if (first) choice["delta"]["role"] = "assistant";
    if (first || !piece.empty()) choice["delta"]["content"] = piece;
    return dump(object("chat.completion.chunk", json::array({choice})));
  }
};

json usage(const Completion& c, const GenerationResult& r) {
  return {{"prompt_tokens", c.prompt.size()},
          {"completion_tokens", r.tokens.size()},
          {"total_tokens", c.prompt.size() + r.tokens.size()}};
}

// The client has left: the worker stops the request at its next token and moves on.
void cancel(const Envelope& envelope, TextStream& text) {
  MEGALITH_LOG_INFO("{}: the client left; the request is cancelled", envelope.id);
  text.cancel();
}

// The next piece of the request's text; false when the request has ended or the client has
// left, which a wait for text (in the queue, or between tokens) checks every 200 ms, so a
// request whose client is gone is cancelled instead of running to its end for nobody.
bool next_piece(const Envelope& envelope, TextStream& text, HttpResponse& response,
                std::string& piece) {
  while (true) {
    const TextStream::Next n = text.next_for(piece, std::chrono::milliseconds(200));
    if (n == TextStream::Next::kEnded) return false;
    if (response.client_left()) {
      response.abandon();
      cancel(envelope, text);
      return false;
    }
    if (n == TextStream::Next::kText) return true;
  }
}

void answer(const Envelope& envelope, const Completion& c, TextStream& text,
            HttpResponse& response) {
  std::string all, piece;
  while (next_piece(envelope, text, response, piece)) all += piece;
  if (response.failed()) return;
  if (!text.result().ok()) return send_error(response, engine_error(text.result().status()));
  const GenerationResult& r = *text.result();
  json choice = {{"index", 0}, {"logprobs", nullptr}, {"finish_reason", r.finish_reason}};
  if (c.chat) {
    choice["message"] = {{"role", "assistant"}, {"content", all}};
  } else {
    choice["text"] = all;
  }
  json body =
      envelope.object(c.chat ? "chat.completion" : "text_completion", json::array({choice}));
  body["usage"] = usage(c, r);
  response.send(200, kJson, dump(body));
}

bool send_event(HttpResponse& response, std::string_view data) {
  return response.write(fmt::format("data: {}\n\n", data));
}

// Server-sent events: a chunk per piece of text as the worker makes it, a last chunk with the
// finish reason (and one with the usage when asked), then [DONE].
void stream(const Envelope& envelope, const Completion& c, TextStream& text,
            HttpResponse& response) {
  std::string piece;
  bool more = next_piece(envelope, text, response, piece);
  if (response.failed()) return;
  // Until the first text comes the request may still fail as a whole, with a proper status.
  if (!more && !text.result().ok()) {
    return send_error(response, engine_error(text.result().status()));
  }
  bool alive = response.start_stream(200, "text/event-stream");
  if (alive && c.chat) alive = send_event(response, envelope.chunk("", nullptr, /*first=*/true));
  while (alive && more) {
    alive = send_event(response, envelope.chunk(piece, nullptr, /*first=*/false));
    more = alive && next_piece(envelope, text, response, piece);
  }
  if (!alive) return cancel(envelope, text);  // a send failed: the client left
  if (response.failed()) return;                // next_piece saw it leave and cancelled
  if (!text.result().ok()) {
    send_event(response, openai::error_json(engine_error(text.result().status())));
  } else {
    const GenerationResult& r = *text.result();
    send_event(response, envelope.chunk("", r.finish_reason, /*first=*/false));
    if (c.include_usage) {
      json last =
          envelope.object(c.chat ? "chat.completion.chunk" : "text_completion", json::array());
      last["usage"] = usage(c, r);
      send_event(response, dump(last));
    }
  }
  send_event(response, "[DONE]");
}

}  // namespace

OpenAiApi::OpenAiApi(const Tokenizer& tokenizer, std::optional<ChatTemplate> chat, Executor& exec,
                     OpenAiApiOptions options)
    : tokenizer_(tokenizer),
      chat_(std::move(chat)),
      options_(std::move(options)),
      id_prefix_(fmt::format("{:08x}", std::random_device()())),
      queue_(exec) {}

OpenAiApi::OpenAiApi(const Tokenizer& tokenizer, std::optional<ChatTemplate> chat,
                     RequestQueue::GenerateFn generate, OpenAiApiOptions options)
    : tokenizer_(tokenizer),
      chat_(std::move(chat)),
      options_(std::move(options)),
      id_prefix_(fmt::format("{:08x}", std::random_device()())),
      queue_(std::move(generate)) {}

std::string OpenAiApi::error_body(int status, std::string_view message) const {
  return openai::error_json({status, std::string(message), "", ""});
}

void OpenAiApi::stop() { queue_.shutdown(); }

void OpenAiApi::handle(const HttpRequest& request, HttpResponse& response) {
  const bool models = request.path == "/v1/models";
  const bool one_model = request.path == "/v1/models/" + options_.model_name;
  const bool chat = request.path == "/v1/chat/completions";
  if (!models && !one_model && !chat && request.path != "/v1/completions") {
    return send_error(response, {404,
                                 fmt::format("no route {} {}: this server has GET /v1/models, "
                                             "POST /v1/completions and POST "
                                             "/v1/chat/completions",
                                             request.method, request.path),
                                 "", "unknown_url"});
  }
  const std::string_view method = models || one_model ? "GET" : "POST";
  if (request.method != method) {
    response.add_header("Allow", method);
    return send_error(
        response, {405, fmt::format("{} takes {}, not {}", request.path, method, request.method),
                   "", "method_not_allowed"});
  }
  if (models || one_model) {
    const json model = {{"id", options_.model_name},
                        {"object", "model"},
                        {"created", 0},
                        {"owned_by", "megalith"},
                        {"max_model_len", options_.max_positions}};
    return response.send(
        200, kJson,
        dump(one_model ? model : json{{"object", "list"}, {"data", json::array({model})}}));
  }
  complete(request, response, chat);
}

void OpenAiApi::complete(const HttpRequest& request, HttpResponse& response, bool chat) {
  Completion c;
  const openai::ModelContext model{tokenizer_, chat_ ? &*chat_ : nullptr, options_};
  if (std::optional<ApiError> error = parse_completion(request.body, chat, model, c)) {
    return send_error(response, *error);
  }
  const Envelope envelope{
      fmt::format("{}-{}-{}", chat ? "chatcmpl" : "cmpl", id_prefix_, requests_++),
      options_.model_name, int64_t(std::time(nullptr)), chat};
  auto text = std::make_shared<TextStream>(tokenizer_, c.stop);
  RequestQueue::Request job{c.prompt, {c.max_tokens, c.stop_token_ids, {}, {}}, c.sampling, {}};
  job.options.on_token = [text](int32_t id) { text->add_token(id); };
  job.options.should_stop = [text] { return text->should_stop(); };
  job.on_done = [text](StatusOr<GenerationResult> r) { text->finish(std::move(r)); };
  MEGALITH_LOG_INFO("{}: {} prompt tokens, up to {} new", envelope.id, c.prompt.size(),
                    c.max_tokens);
  queue_.submit(std::move(job));
  if (c.stream) {
    stream(envelope, c, *text, response);
  } else {
    answer(envelope, c, *text, response);
  }
}

}  // namespace megalith
