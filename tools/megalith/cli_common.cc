#include <filesystem>

#include "cli.h"

namespace megalith::cli {

StatusOr<std::vector<int32_t>> parse_ids(const std::string& text, const std::string& flag) {
  std::vector<int32_t> ids;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t comma = text.find(',', pos);
    if (comma == std::string::npos) comma = text.size();
    std::string item = text.substr(pos, comma - pos);
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    int64_t value = 0;
    size_t used = 0;
    try {
      value = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (item.empty() || used != item.size() || value < 0 || value > INT32_MAX) {
      return invalid_argument("{}: '{}' is not a token id (expected comma-separated "
                              "non-negative integers such as 1,2,3)", flag, item);
    }
    ids.push_back(int32_t(value));
    pos = comma + 1;
  }
  return ids;
}

StatusOr<std::string> resolve_model_dir(const std::string& given) {
  if (!given.empty()) return given;
  std::error_code ec;
  if (!std::filesystem::is_directory(MEGALITH_DEFAULT_MODEL_DIR, ec)) {
    return not_found("no --model given and the built-in default model is missing at {}; run "
                     "scripts/demo (or pass --model DIR)", MEGALITH_DEFAULT_MODEL_DIR);
  }
  return std::string(MEGALITH_DEFAULT_MODEL_DIR);
}

void add_device_options(CLI::App& cmd, DeviceOptions& opts) {
  cmd.add_option("--model", opts.model,
                 "Hugging Face model directory (config.json + safetensors); default: the "
                 "built-in model");
  cmd.add_option("--device", opts.device, "where to run: cpu")->capture_default_str();
}

Status check_device(const DeviceOptions& opts) {
  if (opts.device == "cpu") return {};
  if (opts.device == "cuda") {
    return unimplemented("--device cuda is not available yet; use --device cpu");
  }
  return invalid_argument("unknown --device '{}' (use cpu)", opts.device);
}

}  // namespace megalith::cli
