#include "normalizer.h"

#include <utf8proc.h>

#include <algorithm>
#include <cstdlib>

namespace megalith::tokenizer_internal {
namespace {

StatusOr<int> unicode_form(std::string_view type) {
  if (type == "NFC") return UTF8PROC_STABLE | UTF8PROC_COMPOSE;
  if (type == "NFD") return UTF8PROC_STABLE | UTF8PROC_DECOMPOSE;
  if (type == "NFKC") return UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
  if (type == "NFKD") return UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT;
  return unimplemented("normalizer \"{}\" is not supported (NFC, NFD, NFKC, NFKD and Sequence are)",
                       type);
}

Status add_forms(const Json& normalizer, const std::string& path, std::vector<int>& forms) {
  MEGALITH_ASSIGN_OR_RETURN(std::string type, component_type(normalizer, path));
  if (type == "Sequence") {
    MEGALITH_ASSIGN_OR_RETURN(const Json* list, required_array(normalizer, "normalizers", path));
    for (size_t i = 0; i < list->size(); ++i) {
      MEGALITH_RETURN_IF_ERROR(
          add_forms((*list)[i], element_path(field_path(path, "normalizers"), i), forms));
    }
    return Status::ok_status();
  }
  auto form = unicode_form(type);
  if (!form.ok()) return form.status().with_context(path);
  forms.push_back(*form);
  return Status::ok_status();
}

}  // namespace

StatusOr<Normalizer> Normalizer::parse(const Json& normalizer, std::string_view path) {
  Normalizer result;
  if (!normalizer.is_null()) {
    MEGALITH_RETURN_IF_ERROR(add_forms(normalizer, std::string(path), result.forms_));
  }
  return result;
}

std::string Normalizer::apply(std::string_view text) const {
  // ASCII is in every normal form already, and most prompts are ASCII.
  const bool ascii = std::all_of(text.begin(), text.end(),
                                 [](char c) { return static_cast<unsigned char>(c) < 0x80; });
  if (ascii) return std::string(text);
  std::string current(text);
  for (int form : forms_) {
    utf8proc_uint8_t* mapped = nullptr;
    const utf8proc_ssize_t length =
        utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(current.data()),
                     static_cast<utf8proc_ssize_t>(current.size()), &mapped,
                     static_cast<utf8proc_option_t>(form));
    // utf8proc fails only on invalid UTF-8 or out of memory; the text then stays as it is.
    if (length >= 0) current.assign(reinterpret_cast<const char*>(mapped), length);
    std::free(mapped);
  }
  return current;
}

}  // namespace megalith::tokenizer_internal
