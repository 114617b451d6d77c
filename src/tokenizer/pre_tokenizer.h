// The pre-tokenizer: splits normalized text into the words that BPE merges within, and writes
// their bytes in the byte-level alphabet. It reads Split (a Regex or String pattern, Isolated
// behavior), ByteLevel (optional prefix space, optional GPT-2 pattern) and Sequences of those:
// Llama-3 and Qwen use Sequence[Split(regex), ByteLevel(use_regex=false)], GPT-2-style
// tokenizers a bare ByteLevel(use_regex=true).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "json_fields.h"
#include "regex.h"

namespace megalith::tokenizer_internal {

class PreTokenizer {
 public:
  // `pre_tokenizer` is the tokenizer.json field. A pre-tokenizer without a ByteLevel step is an
  // error: megalith's BPE works on byte-level symbols only.
  static StatusOr<PreTokenizer> parse(const Json& pre_tokenizer, std::string_view path);

  // Appends the words of valid UTF-8 `text` to `words`.
  void split(std::string_view text, std::vector<std::string>& words) const;

 private:
  struct Step {
    std::optional<Regex> split;  // a Split step, or the pattern of ByteLevel(use_regex=true)
    bool byte_level = false;
    bool add_prefix_space = false;
  };
  Status add_steps(const Json& pre_tokenizer, const std::string& path);

  std::vector<Step> steps_;
};

}  // namespace megalith::tokenizer_internal
