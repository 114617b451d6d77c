// The normalizers of tokenizer.json that megalith runs: the Unicode normal forms NFC, NFD, NFKC
// and NFKD (through utf8proc) and Sequences of them. Qwen2/3 normalize to NFC; Llama-3 and
// GPT-2-style tokenizers have none. Lowercasing, stripping and replacing normalizers belong to
// tokenizers megalith does not serve and are refused at load time.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "json_fields.h"

namespace megalith::tokenizer_internal {

class Normalizer {
 public:
  // `normalizer` is the tokenizer.json field (null: the identity).
  static StatusOr<Normalizer> parse(const Json& normalizer, std::string_view path);

  // `text` must be valid UTF-8.
  std::string apply(std::string_view text) const;

 private:
  std::vector<int> forms_;  // utf8proc option sets, applied in order
};

}  // namespace megalith::tokenizer_internal
