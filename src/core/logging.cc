#include "megalith/core/logging.h"

#include <spdlog/sinks/stdout_color_sinks.h>

namespace megalith {

Status set_log_level(std::string_view level) {
  static const bool stderr_logger = [] {
    spdlog::set_default_logger(spdlog::stderr_color_mt("megalith"));
    spdlog::set_pattern("[%l] %v");
    return true;
  }();
  (void)stderr_logger;
  auto parsed = spdlog::level::from_str(std::string(level));
  if (parsed == spdlog::level::off && level != "off") {
    return invalid_argument("unknown log level '{}' (use trace, debug, info, warn, error, off)",
                            level);
  }
  spdlog::set_level(parsed);
  return {};
}

}  // namespace megalith
