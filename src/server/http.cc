#include "megalith/server/http.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>
#include <optional>
#include <system_error>

#include "megalith/core/logging.h"

namespace megalith {

namespace {

std::string_view reason_phrase(int status) {
  static constexpr std::pair<int, std::string_view> kPhrases[] = {
      {200, "OK"},
      {400, "Bad Request"},
      {404, "Not Found"},
      {405, "Method Not Allowed"},
      {413, "Content Too Large"},
      {431, "Request Header Fields Too Large"},
      {500, "Internal Server Error"},
      {501, "Not Implemented"},
      {503, "Service Unavailable"},
      {505, "HTTP Version Not Supported"},
  };
  for (const auto& [code, phrase] : kPhrases) {
    if (code == status) return phrase;
  }
  return "Status";
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = char(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// RFC 9110 token characters: method and header names.
bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c)) &&
        std::string_view("!#$%&'*+-.^_`|~").find(c) == std::string_view::npos) {
      return false;
    }
  }
  return true;
}

// Whether the comma-separated header value holds `token` (case-insensitive).
bool has_token(const std::string* value, std::string_view token) {
  if (!value) return false;
  std::string_view rest = *value;
  while (!rest.empty()) {
    const size_t comma = std::min(rest.find(','), rest.size());
    if (lower(trim(rest.substr(0, comma))) == token) return true;
    rest.remove_prefix(std::min(comma + 1, rest.size()));
  }
  return false;
}

// Appends what the socket has; false when it is closed, timed out or failed.
bool read_more(int fd, std::string& buffer) {
  char chunk[16384];
  while (true) {
    const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n > 0) {
      buffer.append(chunk, size_t(n));
      return true;
    }
    if (n < 0 && errno == EINTR) continue;
    return false;
  }
}

bool send_bytes(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    // MSG_NOSIGNAL: a client that went away is an error here, not a SIGPIPE.
    const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(size_t(n));
  }
  return true;
}

// Closes our side after a response while reading what the client still sends for a moment:
// closing with unread data makes the kernel reset the connection, which can destroy the
// response before the client reads it (an error sent before reading a large body).
void lingering_close(int fd) {
  ::shutdown(fd, SHUT_WR);
  timeval timeout{.tv_sec = 1, .tv_usec = 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  std::string discarded;
  while (discarded.size() < (1u << 20) && read_more(fd, discarded)) {
  }
}

struct ParsedHead {
  int error_status = 0;  // 0: parsed
  std::string error;
  bool http11 = true;
};

// The request line and headers (without the blank line that ends them).
ParsedHead parse_head(std::string_view head, HttpRequest& request) {
  auto fail = [](int status, std::string message) {
    return ParsedHead{status, std::move(message), true};
  };
  ParsedHead parsed;
  size_t eol = std::min(head.find("\r\n"), head.size());
  const std::string_view line = head.substr(0, eol);
  const size_t sp1 = line.find(' ');
  const size_t sp2 = line.find(' ', sp1 == std::string_view::npos ? line.size() : sp1 + 1);
  if (sp1 == std::string_view::npos || sp2 == std::string_view::npos ||
      line.find(' ', sp2 + 1) != std::string_view::npos) {
    return fail(400, "malformed request line");
  }
  request.method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line.substr(sp2 + 1);
  if (!is_token(request.method)) return fail(400, "malformed request method");
  if (version == "HTTP/1.0") {
    parsed.http11 = false;
  } else if (version != "HTTP/1.1") {
    return fail(version.starts_with("HTTP/") ? 505 : 400, "only HTTP/1.1 and HTTP/1.0 are served");
  }
  // Absolute form (through a proxy): keep the path.
  if (target.starts_with("http://") || target.starts_with("https://")) {
    const size_t slash = target.find('/', target.find("//") + 2);
    target = slash == std::string_view::npos ? "/" : target.substr(slash);
  }
  if (!target.starts_with("/")) return fail(400, "the request target must be a path");
  request.path = target.substr(0, target.find('?'));

  while (eol < head.size()) {
    const size_t start = eol + 2;
    eol = std::min(head.find("\r\n", start), head.size());
    const std::string_view field = head.substr(start, eol - start);
    const size_t colon = field.find(':');
    // A name with no colon, or with white space (also obsolete line folding), is malformed.
    if (colon == std::string_view::npos || !is_token(field.substr(0, colon))) {
      return fail(400, "malformed header line");
    }
    if (request.headers.size() == 100) return fail(431, "more than 100 header lines");
    request.headers.emplace_back(lower(field.substr(0, colon)), trim(field.substr(colon + 1)));
  }
  return parsed;
}

}  // namespace

const std::string* HttpRequest::header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (key == name) return &value;
  }
  return nullptr;
}

void HttpResponse::add_header(std::string_view name, std::string_view value) {
  MEGALITH_CHECK(state_ == State::kNone, "a header after the response started");
  extra_headers_ += fmt::format("{}: {}\r\n", name, value);
}

std::string HttpResponse::head(int status, std::string_view content_type) const {
  return fmt::format("HTTP/1.1 {} {}\r\nContent-Type: {}\r\nConnection: {}\r\n{}", status,
                     reason_phrase(status), content_type, keep_alive_ ? "keep-alive" : "close",
                     extra_headers_);
}

void HttpResponse::send(int status, std::string_view content_type, std::string_view body) {
  MEGALITH_CHECK(state_ == State::kNone, "a second response to one request");
  state_ = State::kSent;
  send_all(
      fmt::format("{}Content-Length: {}\r\n\r\n{}", head(status, content_type), body.size(), body));
}

bool HttpResponse::start_stream(int status, std::string_view content_type) {
  MEGALITH_CHECK(state_ == State::kNone, "a second response to one request");
  state_ = State::kStreaming;
  // Without chunked encoding (HTTP/1.0) only the end of the connection ends the body.
  if (!chunked_) keep_alive_ = false;
  return send_all(fmt::format("{}Cache-Control: no-cache\r\n{}\r\n", head(status, content_type),
                              chunked_ ? "Transfer-Encoding: chunked\r\n" : ""));
}

bool HttpResponse::write(std::string_view data) {
  MEGALITH_CHECK(state_ == State::kStreaming, "write() before start_stream()");
  if (data.empty()) return !failed_;  // an empty chunk would end the body
  return chunked_ ? send_all(fmt::format("{:x}\r\n{}\r\n", data.size(), data)) : send_all(data);
}

bool HttpResponse::client_left() const {
  pollfd p{fd_, POLLRDHUP, 0};
  return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

bool HttpResponse::finish_stream() { return !chunked_ || send_all("0\r\n\r\n"); }

bool HttpResponse::send_all(std::string_view bytes) {
  if (!failed_ && !send_bytes(fd_, bytes)) failed_ = true;
  return !failed_;
}

StatusOr<std::unique_ptr<HttpServer>> HttpServer::listen(const std::string& host, int port,
                                                         HttpHandler& handler,
                                                         const HttpLimits& limits) {
  if (port < 0 || port > 65535) return invalid_argument("port {} is not in [0, 65535]", port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* addresses = nullptr;
  if (int rc = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &addresses)) {
    return invalid_argument("cannot listen on '{}': {}", host, gai_strerror(rc));
  }
  int fd = -1;
  std::string error = "no address";
  for (addrinfo* a = addresses; a && fd < 0; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, a->ai_addr, a->ai_addrlen) != 0 || ::listen(fd, 128) != 0) {
      error = std::strerror(errno);
      ::close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(addresses);
  if (fd < 0) return io_error("cannot listen on {} port {}: {}", host, port, error);
  sockaddr_storage bound{};
  socklen_t size = sizeof bound;
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &size);
  const int bound_port =
      ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                        : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  int wake[2];
  if (pipe2(wake, O_CLOEXEC | O_NONBLOCK) != 0) {
    ::close(fd);
    return io_error("cannot make the server's wake-up pipe: {}", std::strerror(errno));
  }
  return std::unique_ptr<HttpServer>(new HttpServer(fd, bound_port, handler, limits, wake));
}

HttpServer::HttpServer(int listen_fd, int port, HttpHandler& handler, const HttpLimits& limits,
                       const int wake[2])
    : listen_fd_(listen_fd),
      port_(port),
      handler_(handler),
      limits_(limits),
      wake_read_(wake[0]),
      wake_write_(wake[1]) {}

HttpServer::~HttpServer() {
  if (listen_fd_ >= 0) ::close(listen_fd_);
  ::close(wake_read_);
  ::close(wake_write_);
}

void HttpServer::stop() {
  const int saved_errno = errno;  // a signal handler must leave errno as it found it
  stopping_ = true;
  [[maybe_unused]] ssize_t n = ::write(wake_write_, "s", 1);
  errno = saved_errno;
}

void HttpServer::serve() {
  pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_read_, POLLIN, 0}};
  while (!stopping_) {
    if (::poll(fds, 2, -1) < 0) continue;  // EINTR
    if (fds[1].revents & POLLIN) {
      char drain[64];
      while (::read(wake_read_, drain, sizeof drain) > 0) {
      }
      reap_connections(/*all=*/false);
    }
    if ((fds[0].revents & POLLIN) && !stopping_) accept_one();
  }
  ::close(listen_fd_);
  listen_fd_ = -1;
  handler_.stop();
  {
    std::lock_guard lock(mutex_);
    for (const auto& c : connections_) ::shutdown(c->fd, SHUT_RDWR);
  }
  reap_connections(/*all=*/true);
}

void HttpServer::accept_one() {
  const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
  if (fd < 0) {
    if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
      // Out of descriptors: the connection stays in the backlog; wait before trying again
      // rather than spin.
      MEGALITH_LOG_WARN("http: accept: {}", std::strerror(errno));
      pollfd wake{wake_read_, POLLIN, 0};
      ::poll(&wake, 1, 100);
    }
    return;
  }
  const timeval idle{.tv_sec = limits_.idle_timeout_s, .tv_usec = 0};
  const timeval send{.tv_sec = limits_.send_timeout_s, .tv_usec = 0};
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &idle, sizeof idle);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &send, sizeof send);
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // stream tokens as they come
  std::lock_guard lock(mutex_);
  if (connections_.size() >= limits_.max_connections) {
    // Answered here without waiting for the client: what it sent already is read so the close
    // does not reset the connection, but the accept loop never lingers.
    send_error(fd, 503, "too many open connections; try again later");
    ::shutdown(fd, SHUT_WR);
    char discard[4096];
    while (::recv(fd, discard, sizeof discard, MSG_DONTWAIT) > 0) {
    }
    ::close(fd);
    return;
  }
  auto& c = connections_.emplace_back(std::make_unique<Connection>());
  c->fd = fd;
  try {
    c->thread = std::thread([this, connection = c.get()] {
      serve_connection(connection->fd);
      connection->done = true;
      [[maybe_unused]] ssize_t n = ::write(wake_write_, "c", 1);  // serve() reaps the thread
    });
  } catch (const std::system_error& e) {
    // No thread to serve it (the process is at its thread limit): refused, not fatal.
    MEGALITH_LOG_WARN("http: no thread for a new connection: {}", e.what());
    connections_.pop_back();
    send_error(fd, 503, "the server cannot take another connection now; try again later");
    ::close(fd);
  }
}

void HttpServer::reap_connections(bool all) {
  std::lock_guard lock(mutex_);
  for (auto it = connections_.begin(); it != connections_.end();) {
    if (!all && !(*it)->done) {
      ++it;
      continue;
    }
    (*it)->thread.join();
    // Closed only here, after its thread ended, so stop() never shuts a reused descriptor.
    ::close((*it)->fd);
    it = connections_.erase(it);
  }
}

void HttpServer::serve_connection(int fd) {
  std::string buffer;
  while (!stopping_ && serve_request(fd, buffer)) {
  }
  lingering_close(fd);
}

void HttpServer::send_error(int fd, int status, std::string_view message) {
  HttpResponse response(fd, /*keep_alive=*/false, /*chunked=*/false);
  response.send(status, "application/json", handler_.error_body(status, message));
}

bool HttpServer::serve_request(int fd, std::string& buffer) {
  // The request timeout runs from the request's first byte; until then the idle timeout
  // (the socket's receive timeout) applies.
  using Clock = std::chrono::steady_clock;
  std::optional<Clock::time_point> deadline;
  const auto request_time = std::chrono::seconds(limits_.request_timeout_s);
  if (!buffer.empty()) deadline = Clock::now() + request_time;
  const auto more = [&] {
    if (!deadline) {
      if (!read_more(fd, buffer)) return false;
      deadline = Clock::now() + request_time;
      return true;
    }
    while (true) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(*deadline - Clock::now());
      pollfd p{fd, POLLIN, 0};
      const int ready = left.count() > 0 ? ::poll(&p, 1, int(left.count())) : 0;
      if (ready < 0 && errno == EINTR) continue;
      if (ready == 0) {
        send_error(fd, 408, fmt::format("the request did not arrive within {} s",
                                        limits_.request_timeout_s));
        return false;
      }
      return ready > 0 && read_more(fd, buffer);
    }
  };
  size_t head_end;
  while (true) {
    // Empty lines before a request are allowed (RFC 9112, section 2.2).
    while (buffer.starts_with("\r\n")) buffer.erase(0, 2);
    head_end = buffer.find("\r\n\r\n");
    if (head_end != std::string::npos) break;
    if (buffer.size() > limits_.max_header_bytes) {
      send_error(fd, 431,
                 fmt::format("the request head exceeds {} bytes", limits_.max_header_bytes));
      return false;
    }
    if (!more()) return false;
  }
  if (head_end > limits_.max_header_bytes) {
    send_error(fd, 431, fmt::format("the request head exceeds {} bytes", limits_.max_header_bytes));
    return false;
  }
  HttpRequest request;
  const ParsedHead head = parse_head(std::string_view(buffer).substr(0, head_end), request);
  if (head.error_status) {
    send_error(fd, head.error_status, head.error);
    return false;
  }
  if (request.header("transfer-encoding")) {
    send_error(fd, 501, "chunked request bodies are not supported: send a Content-Length");
    return false;
  }
  size_t length = 0;
  for (const auto& [name, value] : request.headers) {
    if (name != "content-length") continue;
    size_t parsed = 0;
    const bool digits = !value.empty() && value.size() <= 15 &&
                        value.find_first_not_of("0123456789") == std::string::npos;
    if (digits) parsed = std::stoull(value);
    if (!digits || (length != 0 && parsed != length)) {
      send_error(fd, 400, "malformed Content-Length");
      return false;
    }
    length = parsed;
  }
  if (length > limits_.max_body_bytes) {
    send_error(fd, 413,
               fmt::format("the request body has {} bytes; at most {} are accepted", length,
                           limits_.max_body_bytes));
    return false;
  }
  const size_t body_start = head_end + 4;
  if (buffer.size() < body_start + length && has_token(request.header("expect"), "100-continue") &&
      !send_bytes(fd, "HTTP/1.1 100 Continue\r\n\r\n")) {
    return false;
  }
  while (buffer.size() < body_start + length) {
    if (!more()) return false;
  }
  request.body = buffer.substr(body_start, length);
  buffer.erase(0, body_start + length);

  const std::string* connection = request.header("connection");
  const bool keep_alive = !stopping_ && (head.http11 ? !has_token(connection, "close")
                                                     : has_token(connection, "keep-alive"));
  HttpResponse response(fd, keep_alive, /*chunked=*/head.http11);
  try {
    handler_.handle(request, response);
  } catch (const std::exception& e) {
    MEGALITH_LOG_WARN("http: {} {}: {}", request.method, request.path, e.what());
    if (!response.started()) {
      response.send(500, "application/json", handler_.error_body(500, "internal server error"));
    }
    return false;  // a stream cut short leaves the connection unusable
  }
  if (response.failed()) return false;  // the handler gave up on a client that left
  if (!response.started()) {
    response.send(500, "application/json", handler_.error_body(500, "no response was made"));
  } else if (response.state_ == HttpResponse::State::kStreaming) {
    response.finish_stream();
  }
  return response.keep_alive_ && !response.failed();
}

}  // namespace megalith
