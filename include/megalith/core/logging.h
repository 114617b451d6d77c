// Logging goes to stderr through spdlog, so stdout stays machine-readable (--json).
//
//   megalith::set_log_level("debug");
//   MEGALITH_LOG_INFO("loaded {} tensors from {}", n, dir);
#pragma once

#include <spdlog/spdlog.h>

#include <string_view>

#include "megalith/core/status.h"

namespace megalith {

// Sends the default logger to stderr. Accepts spdlog's level names ("info", "debug", ...).
Status set_log_level(std::string_view level);

}  // namespace megalith

#define MEGALITH_LOG_DEBUG(...) ::spdlog::debug(__VA_ARGS__)
#define MEGALITH_LOG_INFO(...) ::spdlog::info(__VA_ARGS__)
#define MEGALITH_LOG_WARN(...) ::spdlog::warn(__VA_ARGS__)
