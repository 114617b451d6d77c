// megalith serve, run as a user runs it: the CLI on an ephemeral loopback port, on the CPU
// executor with a tiny random-weight model and a real tokenizer, spoken to over plain sockets.
// Its answers must be the ones megalith generate gives for the same prompt (the cache is short
// enough for one attention split at any batch, so the server's batch of 4 sums as batch 1 does).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "http_client.h"
#include "megalith/tokenizer/tokenizer.h"

extern char** environ;

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace megalith::testing;

constexpr int kPositions = 64;  // the server's KV cache: small, so context errors are easy
const std::string kModelName = "tiny-text";

// A megalith serve process; its stderr is read for the startup line and kept.
class ServerProcess {
 public:
  explicit ServerProcess(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {MEGALITH_CLI, "serve", "--port", "0"};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<char*> c_argv;
    for (std::string& a : argv) c_argv.push_back(a.data());
    c_argv.push_back(nullptr);
    int err[2];
    EXPECT_EQ(pipe2(err, O_CLOEXEC), 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, err[1], 2);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    EXPECT_EQ(posix_spawn(&pid_, c_argv[0], &actions, nullptr, c_argv.data(), environ), 0);
    posix_spawn_file_actions_destroy(&actions);
    close(err[1]);
    // The startup line says where it listens: "... listening on http://127.0.0.1:PORT ...".
    const std::string marker = "listening on http://127.0.0.1:";
    char c;
    while (port_ == 0 && read(err[0], &c, 1) == 1) {
      log_ += c;
      const size_t at = log_.find(marker);
      if (c == '\n' && at != std::string::npos) port_ = std::stoi(log_.substr(at + marker.size()));
    }
    EXPECT_GT(port_, 0) << "the server did not start: " << log_;
    drain_ = std::thread([this, fd = err[0]] {
      char chunk[4096];
      ssize_t n;
      while ((n = read(fd, chunk, sizeof chunk)) > 0) log_.append(chunk, size_t(n));
      close(fd);
    });
  }
  ~ServerProcess() {
    if (pid_ > 0) stop(SIGKILL);
  }

  int port() const { return port_; }
  // Sends `signal`, waits for the process, returns its exit code (128 + signal if killed).
  int stop(int signal) {
    kill(pid_, signal);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    drain_.join();
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  const std::string& log() const { return log_; }  // complete after stop()
  // No sanitizer report in the log (UBSan reports without changing the exit status).
  bool clean() const {
    return log_.find("runtime error") == std::string::npos &&
           log_.find("Sanitizer") == std::string::npos;
  }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  std::string log_;
  std::thread drain_;
};

// `megalith generate ARGS --json`, parsed.
json generate_json(const std::string& args) {
  const std::string cmd = std::string(MEGALITH_CLI) + " generate " + args + " --json 2>/dev/null";
  FILE* pipe = popen(cmd.c_str(), "r");
  std::string out;
  char chunk[4096];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, pipe)) > 0) out.append(chunk, n);
  EXPECT_EQ(pclose(pipe), 0) << cmd;
  return json::parse(out, nullptr, false);
}

// A streamed answer: the text of its chunks, its finish reason, and whether it ended in [DONE].
struct Streamed {
  std::string text, finish_reason, id;
  std::vector<json> chunks;
  bool done = false;
};

Streamed parse_stream(const HttpReply& reply, bool chat) {
  EXPECT_EQ(reply.status, 200) << reply.body;
  EXPECT_EQ(reply.header("Content-Type"), "text/event-stream");
  Streamed s;
  for (const std::string& event : sse_events(reply.body)) {
    EXPECT_FALSE(s.done) << "an event after [DONE]";
    if (event == "[DONE]") {
      s.done = true;
      continue;
    }
    const json chunk = json::parse(event);
    EXPECT_EQ(chunk["object"], chat ? "chat.completion.chunk" : "text_completion") << event;
    EXPECT_EQ(chunk["model"], kModelName);
    if (s.id.empty()) s.id = chunk["id"];
    EXPECT_EQ(chunk["id"], s.id) << "chunks of one stream share their id";
    if (chunk["choices"].empty()) continue;  // the usage chunk
    const json& choice = chunk["choices"][0];
    const json& piece = chat ? choice["delta"].value("content", json("")) : choice["text"];
    s.text += piece.get<std::string>();
    if (!choice["finish_reason"].is_null()) s.finish_reason = choice["finish_reason"];
    s.chunks.push_back(chunk);
  }
  return s;
}

class ServeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("megalith_serve_model_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    const std::string cli = MEGALITH_CLI;
    ASSERT_EQ(
        std::system((cli + " make-checkpoint --arch qwen2 --preset tiny --config-only --out " +
                     dir_.string() + " > /dev/null")
                        .c_str()),
        0);
    json config = json::parse(std::ifstream(dir_ / "config.json"));
    config["vocab_size"] = 1280;  // room for the fixture tokenizer's 1205 ids
    std::ofstream(dir_ / "config.json") << config.dump();
    fs::copy_file(fs::path(MEGALITH_SOURCE_DIR) / "tests/tokenizer/fixtures/qwen2/tokenizer.json",
                  dir_ / "tokenizer.json");
    server_ = new ServerProcess({"--model", dir_.string(), "--random-weights", "--device", "cpu",
                                 "--cpu-workers", "2", "--max-seq-len", std::to_string(kPositions),
                                 "--served-model-name", kModelName});
  }
  static void TearDownTestSuite() {
    EXPECT_EQ(server_->stop(SIGTERM), 0) << server_->log();
    EXPECT_TRUE(server_->clean()) << server_->log();
    delete server_;
    fs::remove_all(dir_);
  }

  static int port() { return server_->port(); }
  // What `megalith generate` says for the same model and KV cache.
  static json expected(const std::string& prompt_args, int max_tokens) {
    return generate_json("--model " + dir_.string() + " --random-weights --device cpu " +
                         "--max-seq-len " + std::to_string(kPositions) + " --temperature 0 " +
                         "--max-new-tokens " + std::to_string(max_tokens) + " " + prompt_args);
  }
  static json post(const std::string& path, const json& body) {
    const HttpReply r = http(port(), "POST", path, body.dump());
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.header("Content-Type"), "application/json");
    return json::parse(r.body, nullptr, false);
  }
  static std::string completion_text(const std::string& prompt, int max_tokens) {
    const json r = post("/v1/completions",
                        {{"prompt", prompt}, {"max_tokens", max_tokens}, {"temperature", 0}});
    return r["choices"][0]["text"];
  }

  static fs::path dir_;
  static ServerProcess* server_;
};
fs::path ServeTest::dir_;
ServerProcess* ServeTest::server_ = nullptr;

TEST_F(ServeTest, ModelsListsTheServedModel) {
  const HttpReply r = http(port(), "GET", "/v1/models");
  ASSERT_EQ(r.status, 200) << r.body;
  const json list = json::parse(r.body);
  EXPECT_EQ(list["object"], "list");
  ASSERT_EQ(list["data"].size(), 1u);
  EXPECT_EQ(list["data"][0]["id"], kModelName);
  EXPECT_EQ(list["data"][0]["object"], "model");
  EXPECT_EQ(list["data"][0]["max_model_len"], kPositions);
  const HttpReply one = http(port(), "GET", "/v1/models/" + kModelName);
  ASSERT_EQ(one.status, 200);
  EXPECT_EQ(json::parse(one.body), list["data"][0]);
}

// At temperature 0 the server says what megalith generate says: the same prompt tokens, the
// same text, the same finish reason.
TEST_F(ServeTest, CompletionsAreWhatGenerateGives) {
  const std::string prompt = "Hello world, naïve café!";
  const json want = expected("--prompt '" + prompt + "'", 6);
  const json r =
      post("/v1/completions",
           {{"model", kModelName}, {"prompt", prompt}, {"max_tokens", 6}, {"temperature", 0}});
  EXPECT_EQ(r["object"], "text_completion");
  EXPECT_EQ(r["model"], kModelName);
  EXPECT_EQ(r["id"].get<std::string>().rfind("cmpl-", 0), 0u);
  EXPECT_GT(r["created"].get<int64_t>(), 0);
  ASSERT_EQ(r["choices"].size(), 1u);
  EXPECT_EQ(r["choices"][0]["index"], 0);
  EXPECT_EQ(r["choices"][0]["text"], want["text"]);
  EXPECT_EQ(r["choices"][0]["finish_reason"], want["finish_reason"]);
  EXPECT_EQ(r["usage"]["prompt_tokens"], want["prompt_tokens"]);
  EXPECT_EQ(r["usage"]["completion_tokens"], want["tokens"].size());
  EXPECT_EQ(r["usage"]["total_tokens"],
            want["prompt_tokens"].get<size_t>() + want["tokens"].size());

  // The prompt as token ids gives the same.
  const json by_ids =
      post("/v1/completions", {{"prompt", {1, 2, 3}}, {"max_tokens", 5}, {"temperature", 0}});
  const std::vector<int32_t> tokens = expected("--prompt-ids 1,2,3", 5)["tokens"];
  auto tokenizer = megalith::Tokenizer::load(dir_ / "tokenizer.json");
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status().message();
  EXPECT_EQ(by_ids["choices"][0]["text"], tokenizer->decode(tokens, /*skip_special_tokens=*/true));
}

TEST_F(ServeTest, ChatCompletionsAreWhatGenerateChatGives) {
  const json want = expected("--chat --prompt 'Hi there'", 7);
  for (const char* limit : {"max_tokens", "max_completion_tokens"}) {
    const json r =
        post("/v1/chat/completions", {{"messages", {{{"role", "user"}, {"content", "Hi there"}}}},
                                      {limit, 7},
                                      {"temperature", 0},
                                      {"seed", 5}});
    EXPECT_EQ(r["object"], "chat.completion");
    EXPECT_EQ(r["id"].get<std::string>().rfind("chatcmpl-", 0), 0u);
    EXPECT_EQ(r["choices"][0]["message"]["role"], "assistant");
    EXPECT_EQ(r["choices"][0]["message"]["content"], want["text"]) << limit;
    EXPECT_EQ(r["choices"][0]["finish_reason"], want["finish_reason"]);
    EXPECT_EQ(r["usage"]["prompt_tokens"], want["prompt_tokens"]);
  }
  // Content as a list of text parts is the same message.
  const json parts =
      post("/v1/chat/completions",
           {{"messages",
             {{{"role", "user"},
               {"content",
                {{{"type", "text"}, {"text", "Hi "}}, {{"type", "text"}, {"text", "there"}}}}}}},
            {"max_tokens", 7},
            {"temperature", 0}});
  EXPECT_EQ(parts["choices"][0]["message"]["content"], want["text"]);
}

TEST_F(ServeTest, StreamedEventsAddUpToTheSameText) {
  const std::string whole = completion_text("Once upon a time", 9);
  const Streamed s = parse_stream(http(port(), "POST", "/v1/completions",
                                       json{{"prompt", "Once upon a time"},
                                            {"max_tokens", 9},
                                            {"temperature", 0},
                                            {"stream", true},
                                            {"stream_options", {{"include_usage", true}}}}
                                           .dump()),
                                  /*chat=*/false);
  EXPECT_TRUE(s.done);
  EXPECT_EQ(s.text, whole);
  EXPECT_EQ(s.finish_reason, "length");
  EXPECT_GE(s.chunks.size(), 2u);  // text comes in pieces, then the finish reason

  const json want = expected("--chat --prompt 'Hi there'", 7);
  const HttpReply reply = http(port(), "POST", "/v1/chat/completions",
                               json{{"messages", {{{"role", "user"}, {"content", "Hi there"}}}},
                                    {"max_tokens", 7},
                                    {"temperature", 0},
                                    {"stream", true},
                                    {"stream_options", {{"include_usage", true}}}}
                                   .dump());
  const Streamed chat = parse_stream(reply, /*chat=*/true);
  EXPECT_TRUE(chat.done);
  EXPECT_EQ(chat.text, want["text"]);
  EXPECT_EQ(chat.finish_reason, want["finish_reason"]);
  ASSERT_FALSE(chat.chunks.empty());
  EXPECT_EQ(chat.chunks[0]["choices"][0]["delta"]["role"], "assistant");
  // The usage chunk comes last, before [DONE], with no choices.
  const std::vector<std::string> events = sse_events(reply.body);
  ASSERT_GE(events.size(), 2u);
  const json usage = json::parse(events[events.size() - 2]);
  EXPECT_TRUE(usage["choices"].empty());
  EXPECT_EQ(usage["usage"]["completion_tokens"], want["tokens"].size());
}

// A stop string ends the text before it, streamed or not, and the text never shows any of it.
TEST_F(ServeTest, StopStringsCutTheText) {
  const std::string text = completion_text("The quick brown fox", 14);
  // A stop string of two characters from the middle of the text.
  size_t start = text.size() / 2;
  while (start < text.size() && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) ++start;
  size_t end = start + 1;
  for (int chars = 0; end < text.size(); ++end) {
    if ((static_cast<unsigned char>(text[end]) & 0xC0) != 0x80 && ++chars == 2) break;
  }
  ASSERT_LT(start, text.size()) << text;
  const std::string stop = text.substr(start, end - start);
  const std::string before = text.substr(0, text.find(stop));
  for (const json& stops : {json(stop), json::array({"never appears", stop})}) {
    const json body = {
        {"prompt", "The quick brown fox"}, {"max_tokens", 14}, {"temperature", 0}, {"stop", stops}};
    const json r = post("/v1/completions", body);
    EXPECT_EQ(r["choices"][0]["text"], before) << stop;
    EXPECT_EQ(r["choices"][0]["finish_reason"], "stop");
    json streaming = body;
    streaming["stream"] = true;
    const Streamed s =
        parse_stream(http(port(), "POST", "/v1/completions", streaming.dump()), false);
    EXPECT_EQ(s.text, before);
    EXPECT_EQ(s.finish_reason, "stop");
  }
}

// Every bad request gets a 4xx and an OpenAI error object, and the server goes on serving.
TEST_F(ServeTest, BadRequestsGetJsonErrorsAndTheServerKeepsServing) {
  const std::string long_prompt(400, 'x');  // well over 64 tokens
  const std::string user = R"("messages": [{"role": "user", "content": "hi"}])";
  struct Case {
    std::string path, body;
    int status;
  };
  const Case cases[] = {
      {"/v1/completions", "{not json", 400},
      {"/v1/completions", "", 400},
      {"/v1/completions", "[1, 2]", 400},
      {"/v1/completions", R"({"max_tokens": 4})", 400},
      {"/v1/completions", R"({"prompt": 5})", 400},
      {"/v1/completions", R"({"prompt": ["a", "b"]})", 400},
      {"/v1/completions", R"({"prompt": [1, 99999]})", 400},
      {"/v1/completions", R"({"prompt": [-1]})", 400},
      {"/v1/completions", R"({"prompt": ""})", 400},
      {"/v1/completions", R"({"prompt": "hi", "max_tokens": "10"})", 400},
      {"/v1/completions", R"({"prompt": "hi", "max_tokens": -1})", 400},
      {"/v1/completions", R"({"prompt": "hi", "max_tokens": 0})", 400},
      {"/v1/completions", R"({"prompt": "hi", "max_tokens": 2.5})", 400},
      {"/v1/completions", R"({"prompt": "hi", "max_tokens": 1000000000000})", 400},
      {"/v1/completions", R"({"prompt": "hi", "max_tokens": 18446744073709551615})", 400},
      {"/v1/completions", R"({"prompt": "hi", "max_tokens": 65})", 400},
      {"/v1/completions", R"({"prompt": "hi there", "max_tokens": 64})", 400},
      {"/v1/completions", R"({"prompt": ")" + long_prompt + R"("})", 400},
      {"/v1/completions", R"({"prompt": "hi", "temperature": "hot"})", 400},
      {"/v1/completions", R"({"prompt": "hi", "temperature": 3})", 400},
      {"/v1/completions", R"({"prompt": "hi", "top_p": 0})", 400},
      {"/v1/completions", R"({"prompt": "hi", "stream": "yes"})", 400},
      {"/v1/completions", R"({"prompt": "hi", "stop": 3})", 400},
      {"/v1/completions", R"({"prompt": "hi", "stop": ""})", 400},
      {"/v1/completions", R"({"prompt": "hi", "n": 2})", 400},
      {"/v1/completions", R"({"prompt": "hi", "logprobs": 3})", 400},
      {"/v1/completions", R"({"prompt": "hi", "seed": "x"})", 400},
      {"/v1/completions", R"({"prompt": "hi", "model": 7})", 400},
      {"/v1/completions", R"({"prompt": "hi", "model": "gpt-4"})", 404},
      {"/v1/completions", std::string(100000, '[') + std::string(100000, ']'), 400},
      {"/v1/completions",
       R"({"prompt": "x", "n": )" + std::string(200000, '[') + std::string(200000, ']') + "}", 400},
      {"/v1/chat/completions",
       R"({"messages": [{"role": "user", "content": [{"type": )" + std::string(100000, '[') +
           std::string(100000, ']') + R"(, "text": "x"}]}]})",
       400},
      {"/v1/chat/completions", R"({"messages": "hi"})", 400},
      {"/v1/chat/completions", R"({"messages": []})", 400},
      {"/v1/chat/completions", R"({"messages": [{"content": "hi"}]})", 400},
      {"/v1/chat/completions", R"({"messages": [{"role": "not a role", "content": "hi"}]})", 400},
      {"/v1/chat/completions", R"({"messages": [{"role": "user", "content": 5}]})", 400},
      {"/v1/chat/completions", "{" + user + R"(, "max_completion_tokens": 0})", 400},
      {"/v1/chat/completions", "{" + user + R"(, "max_tokens": 100})", 400},
      {"/v1/chat/completions", "{" + user + R"(, "n": 3})", 400},
      {"/v1/nothing", "{}", 404},
      {"/", "", 404},
  };
  for (const Case& c : cases) {
    const HttpReply r = http(port(), "POST", c.path, c.body);
    EXPECT_EQ(r.status, c.status) << c.path << " " << c.body.substr(0, 80) << "\n" << r.body;
    const json error = json::parse(r.body, nullptr, false);
    ASSERT_TRUE(error.is_object()) << r.body;
    EXPECT_TRUE(error["error"]["message"].is_string()) << r.body;
    EXPECT_TRUE(error["error"]["type"].is_string()) << r.body;
    EXPECT_TRUE(error["error"].contains("param") && error["error"].contains("code")) << r.body;
    EXPECT_EQ(http(port(), "GET", "/v1/models").status, 200) << "after " << c.body.substr(0, 80);
  }
  // Brackets inside strings are not nesting.
  const std::string brackets = R"({"prompt": "hi", "max_tokens": 2, "stop": ")" +
                               std::string(100, '[') + R"("})";
  EXPECT_EQ(http(port(), "POST", "/v1/completions", brackets).status, 200);
  // Prompts that do not fit, alone or with max_tokens, say so.
  for (const std::string& body : {R"({"prompt": ")" + long_prompt + R"("})",
                                  std::string(R"({"prompt": "hi there", "max_tokens": 64})")}) {
    const HttpReply r = http(port(), "POST", "/v1/completions", body);
    EXPECT_EQ(json::parse(r.body)["error"]["code"], "context_length_exceeded") << r.body;
  }
  const HttpReply wrong_method = http(port(), "GET", "/v1/completions");
  EXPECT_EQ(wrong_method.status, 405);
  EXPECT_EQ(wrong_method.header("Allow"), "POST");
  EXPECT_EQ(http(port(), "DELETE", "/v1/models").status, 405);

  // Broken HTTP: each answered with a JSON error, or (cut short) not at all; never a crash.
  const std::pair<std::string, int> raw[] = {
      {"NONSENSE\r\n\r\n", 400},
      {"GET /v1/models HTTP/2.0\r\n\r\n", 505},
      {"GET v1/models HTTP/1.1\r\n\r\n", 400},
      {"GET /v1/models HTTP/1.1\r\nNo colon here\r\n\r\n", 400},
      {"GET /v1/models HTTP/1.1\r\n folded: header\r\n\r\n", 400},
      {"GET /v1/models HTTP/1.1\r\nX-Big: " + std::string(20000, 'a') + "\r\n\r\n", 431},
      {"POST /v1/completions HTTP/1.1\r\nContent-Length: abc\r\n\r\n", 400},
      {"POST /v1/completions HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400},
      {"POST /v1/completions HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n", 413},
      {"POST /v1/completions HTTP/1.1\r\nContent-Length: 5000000\r\n\r\n", 413},
      {"POST /v1/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501},
      {"GET /v1/\xff\xfe HTTP/1.1\r\n\r\n", 404},
      {"POST /v1/completions HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"prompt\"", 0},
  };
  for (const auto& [request, status] : raw) {
    const int fd = connect_loopback(port());
    send_all(fd, request);
    shutdown(fd, SHUT_WR);  // a request cut short ends here
    const std::vector<HttpReply> replies = parse_replies(read_to_end(fd));
    close(fd);
    if (status == 0) {
      EXPECT_TRUE(replies.empty()) << request;
    } else {
      ASSERT_EQ(replies.size(), 1u) << request.substr(0, 80);
      EXPECT_EQ(replies[0].status, status) << request.substr(0, 80);
      EXPECT_TRUE(json::parse(replies[0].body, nullptr, false).contains("error"))
          << replies[0].body;
    }
    EXPECT_EQ(http(port(), "GET", "/v1/models").status, 200) << "after " << request.substr(0, 80);
  }
}

// Requests on one connection, pipelined, answered in order; HTTP/1.0 closes after one.
TEST_F(ServeTest, KeepAliveAnswersEveryRequestOnOneConnection) {
  const std::string body = json{{"prompt", "Hello"}, {"max_tokens", 3}, {"temperature", 0}}.dump();
  const std::string post =
      "POST /v1/completions HTTP/1.1\r\nContent-Length: " + std::to_string(body.size()) +
      "\r\n\r\n" + body;
  const int fd = connect_loopback(port());
  send_all(fd, "GET /v1/models HTTP/1.1\r\n\r\n" + post +
                   "GET /v1/nothing HTTP/1.1\r\nConnection: close\r\n\r\n");
  const std::vector<HttpReply> replies = parse_replies(read_to_end(fd));
  close(fd);
  ASSERT_EQ(replies.size(), 3u);
  EXPECT_EQ(replies[0].status, 200);
  EXPECT_EQ(replies[0].header("Connection"), "keep-alive");
  EXPECT_EQ(replies[1].status, 200);
  EXPECT_EQ(json::parse(replies[1].body)["choices"][0]["text"], completion_text("Hello", 3));
  EXPECT_EQ(replies[2].status, 404);
  EXPECT_EQ(replies[2].header("Connection"), "close");

  const HttpReply old = raw_request(port(), "GET /v1/models HTTP/1.0\r\n\r\n");
  EXPECT_EQ(old.status, 200);
  EXPECT_EQ(old.header("Connection"), "close");
}

// Concurrent streams each get exactly the text their request gets alone: nothing lost, mixed
// or repeated. (The engine decodes up to 4 of them at once, the rest wait; see RequestQueue.)
TEST_F(ServeTest, ConcurrentStreamsEachGetTheirOwnText) {
  constexpr int kClients = 8, kRequestsEach = 3;
  struct Job {
    bool chat;
    json body;
    std::string alone;
    Streamed got;
  };
  std::vector<Job> jobs;
  for (int c = 0; c < kClients; ++c) {
    for (int k = 0; k < kRequestsEach; ++k) {
      const std::string prompt =
          "Client " + std::to_string(c) + (k % 2 ? " on trees " : " ") + std::to_string(k);
      const bool chat = (c + k) % 2 == 1;
      json body = {{"max_tokens", 2 + (c + 2 * k) % 5}, {"temperature", 0}};
      if (chat) {
        body["messages"] = {{{"role", "user"}, {"content", prompt}}};
      } else {
        body["prompt"] = prompt;
      }
      const json alone = post(chat ? "/v1/chat/completions" : "/v1/completions", body);
      const json& choice = alone["choices"][0];
      jobs.push_back({chat, body, chat ? choice["message"]["content"] : choice["text"], {}});
    }
  }
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      for (int k = 0; k < kRequestsEach; ++k) {
        Job& job = jobs[size_t(c * kRequestsEach + k)];
        json body = job.body;
        body["stream"] = true;
        job.got =
            parse_stream(http(port(), "POST", job.chat ? "/v1/chat/completions" : "/v1/completions",
                              body.dump()),
                         job.chat);
      }
    });
  }
  for (std::thread& t : clients) t.join();
  std::set<std::string> ids;
  for (const Job& job : jobs) {
    EXPECT_TRUE(job.got.done) << job.body.dump();
    EXPECT_EQ(job.got.text, job.alone) << job.body.dump();
    EXPECT_FALSE(job.got.finish_reason.empty());
    ids.insert(job.got.id);
  }
  EXPECT_EQ(ids.size(), jobs.size()) << "every request has its own id";
}

// A client that leaves in the middle of a stream costs nothing but its own request.
TEST_F(ServeTest, AClientLeavingMidStreamLeavesTheServerServing) {
  const std::string want = completion_text("Far away", 5);
  for (int i = 0; i < 3; ++i) {
    const int fd = connect_loopback(port());
    const std::string body =
        json{{"prompt", "Leave now"}, {"max_tokens", 60}, {"stream", true}}.dump();
    send_all(fd, "POST /v1/completions HTTP/1.1\r\nContent-Length: " + std::to_string(body.size()) +
                     "\r\n\r\n" + body);
    char first[64];
    EXPECT_GT(recv(fd, first, sizeof first, 0), 0);  // the stream has begun
    close(fd);
  }
  EXPECT_EQ(completion_text("Far away", 5), want);
}

// SIGTERM and SIGINT stop the server with exit status 0 (under the sanitizers: no leak), also
// with a stream in flight and an idle connection open.
TEST_F(ServeTest, SignalsStopTheServerCleanly) {
  for (const int signal : {SIGTERM, SIGINT}) {
    ServerProcess server({"--model", dir_.string(), "--random-weights", "--device", "cpu",
                          "--cpu-workers", "1", "--max-seq-len", std::to_string(kPositions)});
    ASSERT_GT(server.port(), 0);
    const int idle = connect_loopback(server.port());
    const int streaming = connect_loopback(server.port());
    const std::string body = json{{"prompt", "Go on"}, {"max_tokens", 60}, {"stream", true}}.dump();
    send_all(streaming, "POST /v1/completions HTTP/1.1\r\nContent-Length: " +
                            std::to_string(body.size()) + "\r\n\r\n" + body);
    char first[64];
    EXPECT_GT(recv(streaming, first, sizeof first, 0), 0);
    EXPECT_EQ(server.stop(signal), 0) << server.log();
    EXPECT_TRUE(server.clean()) << server.log();
    EXPECT_NE(server.log().find("megalith serve: stopped"), std::string::npos) << server.log();
    read_to_end(streaming);  // ends: the server closed it
    read_to_end(idle);
    close(streaming);
    close(idle);
  }
}

}  // namespace
