#include "post_processor.h"

namespace megalith::tokenizer_internal {

StatusOr<PostProcessor> PostProcessor::parse(const Json& post_processor, std::string_view path) {
  PostProcessor result;
  if (!post_processor.is_null())
    MEGALITH_RETURN_IF_ERROR(result.add(post_processor, std::string(path)));
  return result;
}

Status PostProcessor::add(const Json& processor, const std::string& path) {
  MEGALITH_ASSIGN_OR_RETURN(std::string type, component_type(processor, path));
  if (type == "ByteLevel") return Status::ok_status();
  if (type == "TemplateProcessing") return add_template(processor, path);
  if (type == "Sequence") {
    MEGALITH_ASSIGN_OR_RETURN(const Json* list, required_array(processor, "processors", path));
    for (size_t i = 0; i < list->size(); ++i) {
      MEGALITH_RETURN_IF_ERROR(add((*list)[i], element_path(field_path(path, "processors"), i)));
    }
    return Status::ok_status();
  }
  return unimplemented(
      "{}: post-processor \"{}\" is not supported (TemplateProcessing, ByteLevel and Sequence are)",
      path, type);
}

// "single" is a list of {"SpecialToken": {"id": name}} and one {"Sequence": {"id": "A"}};
// "special_tokens" maps each name to the ids it stands for.
Status PostProcessor::add_template(const Json& processor, const std::string& path) {
  MEGALITH_ASSIGN_OR_RETURN(const Json* single, required_array(processor, "single", path));
  MEGALITH_ASSIGN_OR_RETURN(const Json* special_tokens,
                            required_field(processor, "special_tokens", path));
  const std::string single_path = field_path(path, "single");
  bool seen_sequence = false;
  std::vector<int32_t> before, after;
  for (size_t i = 0; i < single->size(); ++i) {
    const Json& piece = (*single)[i];
    const std::string piece_path = element_path(single_path, i);
    if (optional_field(piece, "Sequence") != nullptr) {
      if (seen_sequence) return invalid_argument("{}: a second Sequence", piece_path);
      seen_sequence = true;
      continue;
    }
    const Json* special = optional_field(piece, "SpecialToken");
    if (special == nullptr) {
      return invalid_argument("{} must be {{\"SpecialToken\": ...}} or {{\"Sequence\": ...}}",
                              piece_path);
    }
    MEGALITH_ASSIGN_OR_RETURN(
        std::string name, required_string(*special, "id", field_path(piece_path, "SpecialToken")));
    const Json* entry = optional_field(*special_tokens, name);
    if (entry == nullptr) {
      return invalid_argument("{}: \"{}\" is not in {}.special_tokens", piece_path, name, path);
    }
    const std::string entry_path = field_path(field_path(path, "special_tokens"), name);
    MEGALITH_ASSIGN_OR_RETURN(const Json* ids, required_array(*entry, "ids", entry_path));
    std::vector<int32_t>& target = seen_sequence ? after : before;
    for (size_t k = 0; k < ids->size(); ++k) {
      MEGALITH_ASSIGN_OR_RETURN(
          int32_t id, token_id((*ids)[k], element_path(field_path(entry_path, "ids"), k)));
      target.push_back(id);
    }
  }
  if (!seen_sequence) return invalid_argument("{} has no Sequence", single_path);
  // A later processor wraps what the earlier ones produced.
  prefix_.insert(prefix_.begin(), before.begin(), before.end());
  suffix_.insert(suffix_.end(), after.begin(), after.end());
  return Status::ok_status();
}

void PostProcessor::apply(std::vector<int32_t>& ids) const {
  ids.insert(ids.begin(), prefix_.begin(), prefix_.end());
  ids.insert(ids.end(), suffix_.begin(), suffix_.end());
}

}  // namespace megalith::tokenizer_internal
