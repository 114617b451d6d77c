// A compiled PCRE2 pattern (UTF + UCP mode), the engine behind the Split and ByteLevel
// pre-tokenizers. Hugging Face runs these patterns with Oniguruma. Both are backtracking
// Perl-style engines and agree on every construct the Llama-3, Qwen and GPT-2 patterns use but
// one: PCRE2's \s also matches U+180E, so \s and \S are rewritten to \p{White_Space}, which is
// exactly Oniguruma's \s.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "megalith/core/status.h"

namespace megalith::tokenizer_internal {

class Regex {
 public:
  // A regular expression; the error quotes PCRE2's message and the offset it points at.
  static StatusOr<Regex> compile(std::string_view pattern);
  // A pattern that matches `text` literally (a Split with a String pattern).
  static StatusOr<Regex> literal(std::string_view text);

  // Splits valid UTF-8 `text` into its matches and the gaps between them, in order, leaving out
  // empty pieces (the Isolated split behavior). Should PCRE2 give up on a pathological input
  // (a resource limit), the rest of the text stays one piece.
  void split_isolated(std::string_view text, std::vector<std::string_view>& pieces) const;

 private:
  struct Code;
  explicit Regex(std::shared_ptr<const Code> code) : code_(std::move(code)) {}
  static StatusOr<Regex> build(const std::string& pattern, uint32_t options);

  std::shared_ptr<const Code> code_;  // immutable once compiled, so copies share it
};

}  // namespace megalith::tokenizer_internal
