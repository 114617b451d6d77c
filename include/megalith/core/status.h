// Status and StatusOr<T>: recoverable errors (bad file, unsupported config, CUDA failure)
// travel as values; broken invariants abort through MEGALITH_CHECK.
//
//   StatusOr<Config> cfg = parse_config(path);
//   if (!cfg.ok()) return cfg.status();          // message already names the file
//   MEGALITH_ASSIGN_OR_RETURN(auto file, SafetensorsFile::open(path));
#pragma once

#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <utility>

namespace megalith {

enum class StatusCode {
  kOk,
  kInvalidArgument,
  kNotFound,
  kIoError,
  kDataLoss,
  kUnimplemented,
  kInternal,  // a broken run (a deadlocked executor), not bad input
  kCancelled,    // the caller gave up on the work (a server's client went away)
  kUnavailable,  // cannot be done now, might be later (a server shutting down)
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok_status() { return {}; }
  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // Prefixes context ("loading model.safetensors: ") to the message of an error.
  Status with_context(const std::string& context) const {
    return ok() ? *this : Status(code_, context + ": " + message_);
  }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

template <typename... Args>
Status invalid_argument(fmt::format_string<Args...> f, Args&&... args) {
  return {StatusCode::kInvalidArgument, fmt::format(f, std::forward<Args>(args)...)};
}
template <typename... Args>
Status not_found(fmt::format_string<Args...> f, Args&&... args) {
  return {StatusCode::kNotFound, fmt::format(f, std::forward<Args>(args)...)};
}
template <typename... Args>
Status io_error(fmt::format_string<Args...> f, Args&&... args) {
  return {StatusCode::kIoError, fmt::format(f, std::forward<Args>(args)...)};
}
template <typename... Args>
Status data_loss(fmt::format_string<Args...> f, Args&&... args) {
  return {StatusCode::kDataLoss, fmt::format(f, std::forward<Args>(args)...)};
}
template <typename... Args>
Status unimplemented(fmt::format_string<Args...> f, Args&&... args) {
  return {StatusCode::kUnimplemented, fmt::format(f, std::forward<Args>(args)...)};
}

template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  StatusOr(Status status) : status_(std::move(status)) {
    if (status_.ok()) {
      std::fprintf(stderr, "megalith: StatusOr constructed from an OK status\n");
      std::abort();
    }
  }

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }

  T& value() & { return checked(), *value_; }
  const T& value() const& { return checked(), *value_; }
  T&& value() && { return checked(), std::move(*value_); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  void checked() const {
    if (!ok()) {
      std::fprintf(stderr, "megalith: value() of an error: %s\n", status_.message().c_str());
      std::abort();
    }
  }
  Status status_;
  std::optional<T> value_;
};

}  // namespace megalith

#define MEGALITH_CONCAT_INNER(a, b) a##b
#define MEGALITH_CONCAT(a, b) MEGALITH_CONCAT_INNER(a, b)

#define MEGALITH_RETURN_IF_ERROR(expr)            \
  do {                                            \
    ::megalith::Status megalith_status_ = (expr); \
    if (!megalith_status_.ok()) return megalith_status_; \
  } while (0)

#define MEGALITH_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                   \
  if (!tmp.ok()) return tmp.status();                  \
  lhs = std::move(tmp).value()

#define MEGALITH_ASSIGN_OR_RETURN(lhs, expr) \
  MEGALITH_ASSIGN_OR_RETURN_IMPL(MEGALITH_CONCAT(megalith_or_, __LINE__), lhs, expr)

// Broken invariants (programming errors, never bad input) abort with a message.
#define MEGALITH_CHECK(cond, ...)                                                       \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      std::fprintf(stderr, "megalith: check failed at %s:%d: %s %s\n", __FILE__, __LINE__, \
                   #cond, ::fmt::format("" __VA_ARGS__).c_str());                       \
      std::abort();                                                                     \
    }                                                                                   \
  } while (0)
