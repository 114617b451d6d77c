// A plain-socket HTTP/1.1 client for the server tests: it sends exactly the bytes a test gives
// (well-formed or not) and reads the answer until the server closes the connection.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <string_view>
#include <vector>

namespace megalith::testing {

struct HttpReply {
  int status = 0;  // 0: no answer
  std::string head;
  std::string body;  // chunked bodies decoded

  // The value of header `name` (as the server writes it), or "".
  std::string header(std::string_view name) const {
    const std::string key = "\r\n" + std::string(name) + ": ";
    const size_t at = head.find(key);
    if (at == std::string::npos) return "";
    const size_t start = at + key.size();
    return head.substr(start, head.find("\r\n", start) - start);
  }
};

// A connection to 127.0.0.1:port. A receive timeout turns a server that hangs into a failed
// test instead of a stuck one.
inline int connect_loopback(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(uint16_t(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const timeval timeout{.tv_sec = 300, .tv_usec = 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0)
      << "cannot connect to port " << port;
  return fd;
}

inline bool send_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    bytes.remove_prefix(size_t(n));
  }
  return true;
}

// Reads until the server closes the connection.
inline std::string read_to_end(int fd) {
  std::string out;
  char chunk[16384];
  ssize_t n;
  while ((n = recv(fd, chunk, sizeof chunk, 0)) > 0) out.append(chunk, size_t(n));
  return out;
}

// The responses in `raw`, in order; interim 100 Continue answers are skipped.
inline std::vector<HttpReply> parse_replies(const std::string& raw) {
  std::vector<HttpReply> replies;
  size_t pos = 0;
  while (pos < raw.size()) {
    const size_t head_end = raw.find("\r\n\r\n", pos);
    if (head_end == std::string::npos || raw.compare(pos, 9, "HTTP/1.1 ") != 0) break;
    HttpReply r;
    r.status = std::stoi(raw.substr(pos + 9, 3));
    r.head = raw.substr(pos, head_end + 2 - pos);
    pos = head_end + 4;
    if (r.status == 100) continue;
    if (r.header("Transfer-Encoding") == "chunked") {
      while (true) {
        const size_t line_end = raw.find("\r\n", pos);
        if (line_end == std::string::npos) return replies;  // cut short: not a whole reply
        const size_t size = std::stoul(raw.substr(pos, line_end - pos), nullptr, 16);
        pos = line_end + 2;
        if (size == 0) {
          pos += 2;
          break;
        }
        r.body += raw.substr(pos, size);
        pos += size + 2;
      }
    } else if (const std::string length = r.header("Content-Length"); !length.empty()) {
      r.body = raw.substr(pos, std::stoul(length));
      pos += r.body.size();
    } else {
      r.body = raw.substr(pos);
      pos = raw.size();
    }
    replies.push_back(std::move(r));
  }
  return replies;
}

// Sends `bytes` as they are and returns the first answer.
inline HttpReply raw_request(int port, std::string_view bytes) {
  const int fd = connect_loopback(port);
  send_all(fd, bytes);
  const std::vector<HttpReply> replies = parse_replies(read_to_end(fd));
  close(fd);
  return replies.empty() ? HttpReply{} : replies.front();
}

inline HttpReply http(int port, std::string_view method, std::string_view path,
                      std::string_view body = "") {
  std::string request = std::string(method) + " " + std::string(path) +
                        " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
  if (!body.empty() || method == "POST") {
    request +=
        "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  }
  return raw_request(port, request + "\r\n" + std::string(body));
}

// The payloads of the server-sent events in `body` ("data: X\n\n" each).
inline std::vector<std::string> sse_events(const std::string& body) {
  std::vector<std::string> events;
  size_t pos = 0;
  while (pos < body.size()) {
    const size_t end = body.find("\n\n", pos);
    EXPECT_NE(end, std::string::npos) << "an event without its blank line: " << body.substr(pos);
    if (end == std::string::npos) break;
    const std::string event = body.substr(pos, end - pos);
    EXPECT_EQ(event.rfind("data: ", 0), 0u) << event;
    events.push_back(event.substr(6));
    pos = end + 2;
  }
  return events;
}

}  // namespace megalith::testing
