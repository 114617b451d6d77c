// Typed reads of tokenizer.json fields that never throw. Each error names the field's path
// ("model.merges[3]") so a malformed file gives a message a user can act on; the loader adds the
// file name in front.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "megalith/core/status.h"

namespace megalith::tokenizer_internal {

using Json = nlohmann::json;

// "parent.key", or "key" at the top level.
std::string field_path(std::string_view parent, std::string_view key);
// "parent[index]".
std::string element_path(std::string_view parent, size_t index);

// A short description of a JSON value's type for messages ("a string", "null", ...).
std::string_view json_type_name(const Json& value);

// The value of `key` in `object`, or nullptr when the key is absent or null.
const Json* optional_field(const Json& object, std::string_view key);

StatusOr<const Json*> required_field(const Json& object, std::string_view key,
                                     std::string_view path);
StatusOr<std::string> required_string(const Json& object, std::string_view key,
                                      std::string_view path);
StatusOr<bool> bool_or(const Json& object, std::string_view key, bool fallback,
                       std::string_view path);
StatusOr<const Json*> required_array(const Json& object, std::string_view key,
                                     std::string_view path);
// An integer that fits a token id: 0 <= id < 2^31.
StatusOr<int32_t> token_id(const Json& value, std::string_view path);

// The "type" of a component object; the error says what `path` must be.
StatusOr<std::string> component_type(const Json& component, std::string_view path);

}  // namespace megalith::tokenizer_internal
