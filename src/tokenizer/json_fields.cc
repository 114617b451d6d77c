#include "json_fields.h"

#include <limits>

namespace megalith::tokenizer_internal {

std::string field_path(std::string_view parent, std::string_view key) {
  return parent.empty() ? std::string(key) : fmt::format("{}.{}", parent, key);
}

std::string element_path(std::string_view parent, size_t index) {
  return fmt::format("{}[{}]", parent, index);
}

std::string_view json_type_name(const Json& value) {
  switch (value.type()) {
    case Json::value_t::null:
      return "null";
    case Json::value_t::object:
      return "an object";
    case Json::value_t::array:
      return "an array";
    case Json::value_t::string:
      return "a string";
    case Json::value_t::boolean:
      return "a boolean";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
      return "an integer";
    case Json::value_t::number_float:
      return "a number";
    default:
      return "binary data";
  }
}

const Json* optional_field(const Json& object, std::string_view key) {
  if (!object.is_object()) return nullptr;
  const auto it = object.find(std::string(key));
  if (it == object.end() || it->is_null()) return nullptr;
  return &*it;
}

StatusOr<const Json*> required_field(const Json& object, std::string_view key,
                                     std::string_view path) {
  const Json* value = optional_field(object, key);
  if (value == nullptr) return invalid_argument("{} is missing", field_path(path, key));
  return value;
}

StatusOr<std::string> required_string(const Json& object, std::string_view key,
                                      std::string_view path) {
  MEGALITH_ASSIGN_OR_RETURN(const Json* value, required_field(object, key, path));
  if (!value->is_string()) {
    return invalid_argument("{} must be a string, not {}", field_path(path, key),
                            json_type_name(*value));
  }
  return value->get<std::string>();
}

StatusOr<bool> bool_or(const Json& object, std::string_view key, bool fallback,
                       std::string_view path) {
  const Json* value = optional_field(object, key);
  if (value == nullptr) return fallback;
  if (!value->is_boolean()) {
    return invalid_argument("{} must be true or false, not {}", field_path(path, key),
                            json_type_name(*value));
  }
  return value->get<bool>();
}

StatusOr<const Json*> required_array(const Json& object, std::string_view key,
                                     std::string_view path) {
  MEGALITH_ASSIGN_OR_RETURN(const Json* value, required_field(object, key, path));
  if (!value->is_array()) {
    return invalid_argument("{} must be an array, not {}", field_path(path, key),
                            json_type_name(*value));
  }
  return value;
}

StatusOr<int32_t> token_id(const Json& value, std::string_view path) {
  if (value.is_number_unsigned() &&
      value.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<int32_t>::max())) {
    return static_cast<int32_t>(value.get<uint64_t>());
  }
  if (value.is_number_integer() && value.get<int64_t>() >= 0 &&
      value.get<int64_t>() <= std::numeric_limits<int32_t>::max()) {
    return static_cast<int32_t>(value.get<int64_t>());
  }
  std::string shown = value.dump();
  if (shown.size() > 40) shown = shown.substr(0, 40) + "...";
  return invalid_argument("{} must be a token id (an integer from 0 to 2^31-1), not {}", path,
                          shown);
}

StatusOr<std::string> component_type(const Json& component, std::string_view path) {
  if (!component.is_object()) {
    return invalid_argument("{} must be an object, not {}", path, json_type_name(component));
  }
  return required_string(component, "type", path);
}

}  // namespace megalith::tokenizer_internal
