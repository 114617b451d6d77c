#include "pre_tokenizer.h"

#include "byte_level.h"

namespace megalith::tokenizer_internal {
namespace {

// The pattern ByteLevel(use_regex=true) splits with: the one GPT-2 was trained with.
constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

StatusOr<Regex> split_pattern(const Json& split, const std::string& path) {
  MEGALITH_ASSIGN_OR_RETURN(const Json* pattern, required_field(split, "pattern", path));
  const std::string pattern_path = field_path(path, "pattern");
  if (const Json* regex = optional_field(*pattern, "Regex"); regex != nullptr) {
    if (!regex->is_string()) return invalid_argument("{}.Regex must be a string", pattern_path);
    auto compiled = Regex::compile(regex->get<std::string>());
    if (!compiled.ok()) return compiled.status().with_context(pattern_path);
    return compiled;
  }
  if (const Json* text = optional_field(*pattern, "String"); text != nullptr) {
    if (!text->is_string()) return invalid_argument("{}.String must be a string", pattern_path);
    return Regex::literal(text->get<std::string>());
  }
  return invalid_argument("{} must be {{\"Regex\": ...}} or {{\"String\": ...}}", pattern_path);
}

}  // namespace

Status PreTokenizer::add_steps(const Json& pre_tokenizer, const std::string& path) {
  MEGALITH_ASSIGN_OR_RETURN(std::string type, component_type(pre_tokenizer, path));
  if (type == "Sequence") {
    MEGALITH_ASSIGN_OR_RETURN(const Json* list,
                              required_array(pre_tokenizer, "pretokenizers", path));
    for (size_t i = 0; i < list->size(); ++i) {
      MEGALITH_RETURN_IF_ERROR(
          add_steps((*list)[i], element_path(field_path(path, "pretokenizers"), i)));
    }
    return Status::ok_status();
  }
  if (type == "Split") {
    const Json* behavior = optional_field(pre_tokenizer, "behavior");
    if (behavior != nullptr && *behavior != "Isolated") {
      return unimplemented("{}.behavior {} is not supported (only \"Isolated\" is)", path,
                           behavior->dump());
    }
    MEGALITH_ASSIGN_OR_RETURN(bool invert, bool_or(pre_tokenizer, "invert", false, path));
    if (invert) return unimplemented("{}.invert true is not supported", path);
    MEGALITH_ASSIGN_OR_RETURN(Regex regex, split_pattern(pre_tokenizer, path));
    steps_.push_back({std::move(regex), false, false});
    return Status::ok_status();
  }
  if (type == "ByteLevel") {
    Step step{std::nullopt, true, false};
    MEGALITH_ASSIGN_OR_RETURN(step.add_prefix_space,
                              bool_or(pre_tokenizer, "add_prefix_space", true, path));
    MEGALITH_ASSIGN_OR_RETURN(bool use_regex, bool_or(pre_tokenizer, "use_regex", true, path));
    if (use_regex) {
      auto regex = Regex::compile(kGpt2Pattern);
      MEGALITH_CHECK(regex.ok(), "the built-in GPT-2 pattern must compile");
      step.split = std::move(regex).value();
    }
    steps_.push_back(std::move(step));
    return Status::ok_status();
  }
  return unimplemented(
      "{}: pre-tokenizer \"{}\" is not supported (ByteLevel, Split and Sequence are)", path, type);
}

StatusOr<PreTokenizer> PreTokenizer::parse(const Json& pre_tokenizer, std::string_view path) {
  PreTokenizer result;
  if (pre_tokenizer.is_null()) {
    return unimplemented("{} is null: only byte-level BPE (a ByteLevel pre-tokenizer) is supported",
                         path);
  }
  MEGALITH_RETURN_IF_ERROR(result.add_steps(pre_tokenizer, std::string(path)));
  bool byte_level = false;
  for (const Step& step : result.steps_) byte_level = byte_level || step.byte_level;
  if (!byte_level) {
    return unimplemented("{} has no ByteLevel step: only byte-level BPE is supported", path);
  }
  return result;
}

void PreTokenizer::split(std::string_view text, std::vector<std::string>& words) const {
  std::vector<std::string> pieces{std::string(text)};
  std::vector<std::string> next;
  std::vector<std::string_view> parts;
  for (const Step& step : steps_) {
    next.clear();
    for (std::string& piece : pieces) {
      if (piece.empty()) continue;
      // Hugging Face adds the space to every piece that reaches ByteLevel, not only the first.
      if (step.add_prefix_space && piece.front() != ' ') piece.insert(0, 1, ' ');
      parts.clear();
      if (step.split) {
        step.split->split_isolated(piece, parts);
      } else {
        parts.push_back(piece);
      }
      for (std::string_view part : parts) {
        if (step.byte_level) {
          append_byte_symbols(part, next.emplace_back());
        } else {
          next.emplace_back(part);
        }
      }
    }
    pieces.swap(next);
  }
  for (std::string& piece : pieces) {
    if (!piece.empty()) words.push_back(std::move(piece));
  }
}

}  // namespace megalith::tokenizer_internal
