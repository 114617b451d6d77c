// A small HTTP/1.1 server on POSIX sockets, enough for the OpenAI-compatible API: a thread per
// connection, request bodies with a Content-Length, keep-alive, and responses either whole or
// streamed (chunked transfer encoding, for server-sent events). Limits on the size of headers
// and bodies, on open connections and on silent clients keep bad or hostile clients from taking
// the process down; whatever arrives, the server answers an error or closes the connection.
//
//   class Hello : public HttpHandler {
//     void handle(const HttpRequest&, HttpResponse& response) override {
//       response.send(200, "text/plain", "hello\n");
//     }
//     std::string error_body(int, std::string_view message) const override { ... }
//   } hello;
//   MEGALITH_ASSIGN_OR_RETURN(auto server, HttpServer::listen("127.0.0.1", 0, hello));
//   std::thread serving([&] { server->serve(); });   // server->port(): the port bound
//   server->stop();  serving.join();
#pragma once

#include <atomic>
#include <cstddef>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "megalith/core/status.h"

namespace megalith {

struct HttpRequest {
  std::string method;                                        // "GET", "POST", ...
  std::string path;                                          // the target without its "?query"
  std::vector<std::pair<std::string, std::string>> headers;  // names in lower case
  std::string body;

  // The value of the header `name` (lower case), or nullptr.
  const std::string* header(std::string_view name) const;
};

// How a handler answers: once with send(), or with start_stream() and then write()s.
class HttpResponse {
 public:
  // A header to send with the response ("Allow: GET"), before send() or start_stream().
  void add_header(std::string_view name, std::string_view value);
  // A whole response.
  void send(int status, std::string_view content_type, std::string_view body);
  // Starts a response whose body follows in write()s; it ends when the handler returns.
  bool start_stream(int status, std::string_view content_type);
  // Sends `data` now. False when the client has gone: the handler should stop producing.
  bool write(std::string_view data);

  bool started() const { return state_ != State::kNone; }
  bool failed() const { return failed_; }
  // Whether the client has closed the connection (or it broke), without reading from it: a
  // handler that works long before it answers asks now and then, and gives up once the
  // client is gone.
  bool client_left() const;
  // The handler gives up without an answer: the client is gone.
  void abandon() { failed_ = true; }

 private:
  friend class HttpServer;
  enum class State { kNone, kSent, kStreaming };
  HttpResponse(int fd, bool keep_alive, bool chunked)
      : fd_(fd), keep_alive_(keep_alive), chunked_(chunked) {}
  bool send_all(std::string_view bytes);
  bool finish_stream();

  std::string head(int status, std::string_view content_type) const;

  int fd_;
  bool keep_alive_;
  bool chunked_;  // HTTP/1.1: chunked transfer encoding; 1.0: the body ends with the connection
  State state_ = State::kNone;
  bool failed_ = false;
  std::string extra_headers_;
};

class HttpHandler {
 public:
  virtual ~HttpHandler() = default;
  // Answers one request. Runs on the connection's thread, concurrently with other requests.
  virtual void handle(const HttpRequest& request, HttpResponse& response) = 0;
  // The JSON body of an error the server answers by itself (a malformed or too large request, a
  // full server, a handler that threw).
  virtual std::string error_body(int status, std::string_view message) const = 0;
  // Called once when the server stops, before it waits for its connections: ends whatever
  // would keep handlers waiting.
  virtual void stop() {}
};

struct HttpLimits {
  size_t max_header_bytes = 16 << 10;  // the request line and headers
  size_t max_body_bytes = 4 << 20;
  size_t max_connections = 64;  // more are answered 503 and closed
  int idle_timeout_s = 60;      // a connection silent this long, in or between requests, closes
  int send_timeout_s = 60;      // a client that takes no data this long is taken to be gone
  // A request's head and body must arrive within this many seconds of its first byte, so a
  // client that trickles a byte now and then cannot hold a connection thread for ever.
  int request_timeout_s = 30;
};

class HttpServer {
 public:
  // Binds host:port and listens; port 0 takes a free port (see port()). `handler` must outlive
  // the server.
  static StatusOr<std::unique_ptr<HttpServer>> listen(const std::string& host, int port,
                                                      HttpHandler& handler,
                                                      const HttpLimits& limits = {});
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int port() const { return port_; }

  // Serves connections until stop(); then stops the handler, closes every connection, waits
  // for their threads and returns.
  void serve();
  // Makes serve() return. Async-signal-safe, so a SIGINT handler may call it.
  void stop();

 private:
  struct Connection {
    int fd;
    std::thread thread;
    std::atomic<bool> done{false};
  };

  HttpServer(int listen_fd, int port, HttpHandler& handler, const HttpLimits& limits,
             const int wake[2]);
  void accept_one();
  void serve_connection(int fd);
  // Answers the request at the front of `buffer`; false when the connection is to close.
  bool serve_request(int fd, std::string& buffer);
  void send_error(int fd, int status, std::string_view message);
  void reap_connections(bool all);

  int listen_fd_;
  int port_;
  HttpHandler& handler_;
  HttpLimits limits_;
  int wake_read_, wake_write_;  // a byte here wakes serve(): stop() or a connection ended
  std::atomic<bool> stopping_{false};
  std::mutex mutex_;
  std::list<std::unique_ptr<Connection>> connections_;  // guarded by mutex_
};

}  // namespace megalith
