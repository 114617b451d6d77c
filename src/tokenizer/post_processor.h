// The post-processor of tokenizer.json, reduced to what it does to one sequence when
// add_special_tokens is set: ids before it and ids after it. Llama-3's TemplateProcessing puts
// <|begin_of_text|> first; ByteLevel (Qwen) only adjusts offsets and adds nothing.
#pragma once

#include <cstdint>
#include <vector>

#include "json_fields.h"

namespace megalith::tokenizer_internal {

class PostProcessor {
 public:
  // `post_processor` is the tokenizer.json field (null: adds nothing).
  static StatusOr<PostProcessor> parse(const Json& post_processor, std::string_view path);

  void apply(std::vector<int32_t>& ids) const;

 private:
  Status add(const Json& post_processor, const std::string& path);
  Status add_template(const Json& processor, const std::string& path);

  std::vector<int32_t> prefix_;
  std::vector<int32_t> suffix_;
};

}  // namespace megalith::tokenizer_internal
