// The HTTP server and the OpenAI API in-process, against clients that misbehave in time: one
// that trickles its request slower than the request timeout allows, ones that leave while
// their request waits or runs, and a shutdown in the middle of a request. A fake engine that
// runs until it is asked to stop makes every case deterministic.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <future>
#include <nlohmann/json.hpp>
#include <thread>

#include "http_client.h"
#include "megalith/server/http.h"
#include "megalith/server/openai_api.h"
#include "megalith/tokenizer/tokenizer.h"

namespace megalith {
namespace {

using json = nlohmann::json;
using namespace megalith::testing;

class Echo : public HttpHandler {
 public:
  void handle(const HttpRequest& request, HttpResponse& response) override {
    response.send(200, "text/plain", request.body);
  }
  std::string error_body(int, std::string_view message) const override {
    return std::string(message);
  }
};

// A server on an ephemeral loopback port, serving until the object ends.
class Serving {
 public:
  Serving(HttpHandler& handler, const HttpLimits& limits) {
    auto server = HttpServer::listen("127.0.0.1", 0, handler, limits);
    EXPECT_TRUE(server.ok()) << server.status().message();
    server_ = std::move(server).value();
    thread_ = std::thread([this] { server_->serve(); });
  }
  ~Serving() {
    server_->stop();
    thread_.join();
  }
  int port() const { return server_->port(); }

 private:
  std::unique_ptr<HttpServer> server_;
  std::thread thread_;
};

TEST(HttpServer, ARequestTrickledSlowerThanTheTimeoutGets408) {
  Echo echo;
  Serving serving(echo, {.request_timeout_s = 1});
  const int fd = connect_loopback(serving.port());
  const std::string request = "POST /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
  // A byte every 100 ms: each arrives well within the idle timeout, the whole would take 5 s.
  for (char c : request) {
    if (!send_all(fd, std::string_view(&c, 1))) break;  // the server gave up and closed
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const std::vector<HttpReply> replies = parse_replies(read_to_end(fd));
  close(fd);
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].status, 408) << replies[0].body;
  // The server is still there for a client that sends in time.
  const HttpReply ok = http(serving.port(), "POST", "/echo", "in time");
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(ok.body, "in time");
}

// An engine that makes token 1 and then runs until it is asked to stop; its first run
// reports when it started and that it was stopped.
struct EndlessEngine {
  std::promise<void> started, stopped;
  int runs = 0;  // on the worker thread

  RequestQueue::GenerateFn fn() {
    return [this](std::span<const int32_t>, const GenerationOptions& options,
                  const SamplingParams&) -> StatusOr<GenerationResult> {
      const bool first = runs++ == 0;
      options.on_token(1);
      if (first) started.set_value();
      const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
      while (!options.should_stop() && std::chrono::steady_clock::now() < give_up) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      if (first && options.should_stop()) stopped.set_value();
      return GenerationResult{{1}, "length", 0, 0};
    };
  }
};

class OpenAiApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto tok = Tokenizer::load(std::filesystem::path(MEGALITH_SOURCE_DIR) /
                               "tests/tokenizer/fixtures/qwen2/tokenizer.json");
    ASSERT_TRUE(tok.ok()) << tok.status().message();
    tokenizer_.emplace(std::move(tok).value());
  }
  OpenAiApiOptions options() const {
    return {.model_name = "endless", .max_positions = 64, .vocab_size = 1280};
  }
  static std::string request(bool stream) {
    const std::string body =
        json{{"prompt", "Go on"}, {"max_tokens", 40}, {"stream", stream}}.dump();
    return "POST /v1/completions HTTP/1.1\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\n\r\n" + body;
  }

  std::optional<Tokenizer> tokenizer_;
};

// A request is cancelled once its client has gone: while it runs (streamed or not) and while
// it waits behind another one.
TEST_F(OpenAiApiTest, ARequestWhoseClientLeftIsCancelled) {
  for (bool stream : {false, true}) {
    SCOPED_TRACE(stream ? "streamed" : "whole");
    EndlessEngine engine;
    OpenAiApi api(*tokenizer_, std::nullopt, engine.fn(), options());
    Serving serving(api, {});
    const int fd = connect_loopback(serving.port());
    ASSERT_TRUE(send_all(fd, request(stream)));
    engine.started.get_future().wait();
    close(fd);
    EXPECT_EQ(engine.stopped.get_future().wait_for(std::chrono::seconds(20)),
              std::future_status::ready)
        << "the request ran on for a client that had left";
    api.stop();
  }
}

TEST_F(OpenAiApiTest, ARequestWhoseClientLeftWhileQueuedNeverRuns) {
  EndlessEngine engine;
  OpenAiApi api(*tokenizer_, std::nullopt, engine.fn(), options());
  Serving serving(api, {});
  const int running = connect_loopback(serving.port());
  ASSERT_TRUE(send_all(running, request(false)));
  engine.started.get_future().wait();
  // The second waits for the worker and its client leaves; the server notices within its
  // 200 ms polls (the 2 s here are a margin for slow sanitizer builds); then the first
  // one's client leaves too, and the worker comes to the second.
  const int queued = connect_loopback(serving.port());
  ASSERT_TRUE(send_all(queued, request(false)));
  close(queued);
  std::this_thread::sleep_for(std::chrono::seconds(2));
  close(running);
  EXPECT_EQ(engine.stopped.get_future().wait_for(std::chrono::seconds(20)),
            std::future_status::ready);
  api.stop();  // returns once the worker is gone: every request has been taken or dropped
  EXPECT_EQ(engine.runs, 1) << "the queued request ran although its client had left";
}

// A request cut short by the server's shutdown is answered with an error, not as finished.
TEST_F(OpenAiApiTest, ShutdownAnswersARunningRequestWithAnError) {
  EndlessEngine engine;
  OpenAiApi api(*tokenizer_, std::nullopt, engine.fn(), options());
  Serving serving(api, {});
  std::future<HttpReply> reply = std::async(std::launch::async, [&] {
    return http(serving.port(), "POST", "/v1/completions",
                json{{"prompt", "Go on"}, {"max_tokens", 40}}.dump());
  });
  engine.started.get_future().wait();
  api.stop();
  const HttpReply r = reply.get();
  EXPECT_EQ(r.status, 503) << r.body;
  const json body = json::parse(r.body, nullptr, false);
  ASSERT_TRUE(body.contains("error")) << r.body;
  EXPECT_NE(body["error"]["message"].get<std::string>().find("shutting down"), std::string::npos)
      << r.body;
}

}  // namespace
}  // namespace megalith
