// The added tokens of tokenizer.json (special tokens such as <|eot_id|> and extra ones such as
// Qwen3's <think>). They are cut out of the text before the pre-tokenizer sees it, so the model
// never splits them: leftmost match first, the longest at a position, then the token's
// single_word, lstrip and rstrip rules applied the way Hugging Face applies them. Tokens with
// normalized=false are matched on the raw text, the others on the normalized text.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "bpe_model.h"
#include "normalizer.h"

namespace megalith::tokenizer_internal {

struct AddedToken {
  std::string content;
  int32_t id = 0;
  bool special = false;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;
  std::string pattern;  // what is matched: the content, normalized when `normalized`
};

// A stretch of text between added tokens (id < 0), or one added token with the text it covers.
struct Segment {
  std::string_view text;
  int32_t id;
};

class AddedTokens {
 public:
  // `added_tokens` is the tokenizer.json field; `normalizer` prepares the normalized patterns.
  static StatusOr<AddedTokens> parse(const Json& added_tokens, std::string_view path,
                                     const Normalizer& normalizer);

  // Appends the segments of `text`, cut at the tokens whose normalized flag is `normalized`.
  // Empty stretches are left out.
  void split(std::string_view text, bool normalized, std::vector<Segment>& segments) const;

  const AddedToken* find(int32_t id) const;
  const AddedToken* find(std::string_view content) const;
  const std::vector<AddedToken>& all() const { return tokens_; }

 private:
  struct Match {
    size_t begin;
    size_t end;
    const AddedToken* token;
  };
  std::optional<Match> next_match(std::string_view text, size_t from, bool normalized) const;

  std::vector<AddedToken> tokens_;
  std::unordered_map<int32_t, size_t> by_id_;
  StringMap<size_t> by_content_;
  // Indices into tokens_ by the first byte of the pattern, longest first; [normalized][byte].
  std::array<std::array<std::vector<size_t>, 256>, 2> by_first_byte_;
};

}  // namespace megalith::tokenizer_internal
