#include "added_tokens.h"

#include <algorithm>

#include "utf8.h"

namespace megalith::tokenizer_internal {
namespace {

char32_t last_code_point(std::string_view text) {
  size_t start = text.size() - 1;
  while (start > 0 && (static_cast<uint8_t>(text[start]) & 0xC0) == 0x80) --start;
  return next_code_point(text, start);
}

char32_t first_code_point(std::string_view text) {
  size_t pos = 0;
  return next_code_point(text, pos);
}

// Where the White_Space that `text` ends with begins.
size_t trailing_space_start(std::string_view text) {
  size_t end = text.size();
  while (end > 0) {
    size_t start = end - 1;
    while (start > 0 && (static_cast<uint8_t>(text[start]) & 0xC0) == 0x80) --start;
    size_t pos = start;
    if (!is_white_space(next_code_point(text, pos))) break;
    end = start;
  }
  return end;
}

// How many bytes of White_Space `text` starts with.
size_t leading_space_length(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t next = pos;
    if (!is_white_space(next_code_point(text, next))) break;
    pos = next;
  }
  return pos;
}

StatusOr<AddedToken> parse_token(const Json& entry, const std::string& path) {
  if (!entry.is_object()) {
    return invalid_argument("{} must be an object, not {}", path, json_type_name(entry));
  }
  AddedToken token;
  MEGALITH_ASSIGN_OR_RETURN(const Json* id, required_field(entry, "id", path));
  MEGALITH_ASSIGN_OR_RETURN(token.id, token_id(*id, field_path(path, "id")));
  MEGALITH_ASSIGN_OR_RETURN(token.content, required_string(entry, "content", path));
  MEGALITH_ASSIGN_OR_RETURN(token.special, bool_or(entry, "special", false, path));
  MEGALITH_ASSIGN_OR_RETURN(token.single_word, bool_or(entry, "single_word", false, path));
  MEGALITH_ASSIGN_OR_RETURN(token.lstrip, bool_or(entry, "lstrip", false, path));
  MEGALITH_ASSIGN_OR_RETURN(token.rstrip, bool_or(entry, "rstrip", false, path));
  // Hugging Face's default: special tokens are matched on the raw text, others normalized.
  MEGALITH_ASSIGN_OR_RETURN(token.normalized, bool_or(entry, "normalized", !token.special, path));
  return token;
}

}  // namespace

StatusOr<AddedTokens> AddedTokens::parse(const Json& added_tokens, std::string_view path_view,
                                         const Normalizer& normalizer) {
  const std::string path(path_view);
  AddedTokens result;
  if (added_tokens.is_null()) return result;
  if (!added_tokens.is_array()) {
    return invalid_argument("{} must be an array, not {}", path, json_type_name(added_tokens));
  }
  for (size_t i = 0; i < added_tokens.size(); ++i) {
    MEGALITH_ASSIGN_OR_RETURN(AddedToken token,
                              parse_token(added_tokens[i], element_path(path, i)));
    if (result.by_id_.contains(token.id)) {
      return invalid_argument("{}: id {} is used twice", element_path(path, i), token.id);
    }
    token.pattern = token.normalized ? normalizer.apply(token.content) : token.content;
    result.by_id_.emplace(token.id, result.tokens_.size());
    result.by_content_.emplace(token.content, result.tokens_.size());
    result.tokens_.push_back(std::move(token));
  }
  for (size_t i = 0; i < result.tokens_.size(); ++i) {
    const AddedToken& token = result.tokens_[i];
    if (token.pattern.empty()) continue;  // an empty token never matches
    const auto first = static_cast<uint8_t>(token.pattern.front());
    result.by_first_byte_[token.normalized][first].push_back(i);
  }
  for (auto& table : result.by_first_byte_) {
    for (auto& candidates : table) {
      std::stable_sort(candidates.begin(), candidates.end(), [&](size_t a, size_t b) {
        return result.tokens_[a].pattern.size() > result.tokens_[b].pattern.size();
      });
    }
  }
  return result;
}

std::optional<AddedTokens::Match> AddedTokens::next_match(std::string_view text, size_t from,
                                                          bool normalized) const {
  const auto& table = by_first_byte_[normalized];
  for (size_t pos = from; pos < text.size(); ++pos) {
    for (size_t i : table[static_cast<uint8_t>(text[pos])]) {
      const std::string& pattern = tokens_[i].pattern;
      if (text.compare(pos, pattern.size(), pattern) == 0) {
        return Match{pos, pos + pattern.size(), &tokens_[i]};
      }
    }
  }
  return std::nullopt;
}

void AddedTokens::split(std::string_view text, bool normalized,
                        std::vector<Segment>& segments) const {
  size_t done = 0;  // text before this is in segments
  size_t search_from = 0;
  while (const auto match = next_match(text, search_from, normalized)) {
    const AddedToken& token = *match->token;
    search_from = match->end;
    size_t begin = match->begin;
    size_t end = match->end;
    if (token.single_word) {
      const bool word_before =
          begin > 0 && is_word_character(last_code_point(text.substr(0, begin)));
      const bool word_after =
          end < text.size() && is_word_character(first_code_point(text.substr(end)));
      if (word_before || word_after) continue;  // inside a word: not this token
    }
    if (token.lstrip) begin = std::max(trailing_space_start(text.substr(0, begin)), done);
    if (token.rstrip) end += leading_space_length(text.substr(end));
    if (begin > done) segments.push_back({text.substr(done, begin - done), -1});
    segments.push_back({text.substr(begin, end - begin), token.id});
    done = search_from = end;
  }
  if (done < text.size()) segments.push_back({text.substr(done), -1});
}

const AddedToken* AddedTokens::find(int32_t id) const {
  const auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

const AddedToken* AddedTokens::find(std::string_view content) const {
  const auto it = by_content_.find(content);
  return it == by_content_.end() ? nullptr : &tokens_[it->second];
}

}  // namespace megalith::tokenizer_internal
