// Tokenizer::load: reads tokenizer.json into its parts, refusing what megalith does not
// implement with an error rather than tokenizing differently from Hugging Face.
#include <fstream>
#include <sstream>

#include "json_fields.h"
#include "tokenizer_impl.h"

namespace megalith {

using tokenizer_internal::Json;

namespace {

// Only the ByteLevel decoder exists for byte-level BPE; any other would give different text.
Status check_decoder(const Json& root) {
  const Json* decoder = tokenizer_internal::optional_field(root, "decoder");
  if (decoder == nullptr) {
    return unimplemented("decoder is null: only the ByteLevel decoder is supported");
  }
  MEGALITH_ASSIGN_OR_RETURN(std::string type,
                            tokenizer_internal::component_type(*decoder, "decoder"));
  if (type != "ByteLevel") {
    return unimplemented("decoder \"{}\" is not supported (only ByteLevel is)", type);
  }
  return Status::ok_status();
}

StatusOr<std::unique_ptr<Tokenizer::Impl>> parse_root(const Json& root) {
  using namespace tokenizer_internal;
  if (!root.is_object()) {
    return invalid_argument("the top level must be an object, not {}", json_type_name(root));
  }
  auto impl = std::make_unique<Tokenizer::Impl>();
  MEGALITH_ASSIGN_OR_RETURN(const Json* model, required_field(root, "model", ""));
  MEGALITH_ASSIGN_OR_RETURN(impl->model, BpeModel::parse(*model, "model"));
  const Json null_json;
  const auto field = [&](std::string_view key) -> const Json& {
    const Json* value = optional_field(root, key);
    return value != nullptr ? *value : null_json;
  };
  MEGALITH_ASSIGN_OR_RETURN(impl->normalizer, Normalizer::parse(field("normalizer"), "normalizer"));
  MEGALITH_ASSIGN_OR_RETURN(
      impl->added_tokens,
      AddedTokens::parse(field("added_tokens"), "added_tokens", impl->normalizer));
  MEGALITH_ASSIGN_OR_RETURN(impl->pre_tokenizer,
                            PreTokenizer::parse(field("pre_tokenizer"), "pre_tokenizer"));
  MEGALITH_ASSIGN_OR_RETURN(impl->post_processor,
                            PostProcessor::parse(field("post_processor"), "post_processor"));
  MEGALITH_RETURN_IF_ERROR(check_decoder(root));
  return impl;
}

StatusOr<std::unique_ptr<Tokenizer::Impl>> parse_root_guarded(const Json& root) {
  try {
    return parse_root(root);
  } catch (const nlohmann::json::exception& e) {  // a shape the checks did not foresee
    return invalid_argument("unexpected JSON structure: {}", e.what());
  }
}

}  // namespace

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

StatusOr<Tokenizer> Tokenizer::from_json(std::string_view json_text, std::string_view source) {
  const Json root = Json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) {
    return invalid_argument("{}: not valid JSON (truncated or corrupt?)", source);
  }
  StatusOr<std::unique_ptr<Impl>> impl = parse_root_guarded(root);
  if (!impl.ok()) return impl.status().with_context(std::string(source));
  return Tokenizer(std::move(impl).value());
}

StatusOr<Tokenizer> Tokenizer::load(const std::filesystem::path& tokenizer_json) {
  std::error_code error;
  if (std::filesystem::is_directory(tokenizer_json, error)) {
    return invalid_argument("{}: is a directory, not a tokenizer.json file",
                            tokenizer_json.string());
  }
  // The largest real tokenizer.json files are tens of MB; refuse to slurp a weights file.
  constexpr std::uintmax_t kMaxBytes = std::uintmax_t{1} << 30;
  if (const auto size = std::filesystem::file_size(tokenizer_json, error);
      !error && size > kMaxBytes) {
    return invalid_argument("{}: {} bytes is too large for a tokenizer.json",
                            tokenizer_json.string(), size);
  }
  std::ifstream file(tokenizer_json, std::ios::binary);
  if (!file) return not_found("{}: cannot open the file", tokenizer_json.string());
  std::ostringstream text;
  text << file.rdbuf();
  if (file.bad()) return io_error("{}: read failed", tokenizer_json.string());
  return from_json(text.str(), tokenizer_json.string());
}

}  // namespace megalith
