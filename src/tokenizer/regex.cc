#include "regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <string>

#include "utf8.h"

namespace megalith::tokenizer_internal {

struct Regex::Code {
  pcre2_code* code = nullptr;
  ~Code() { pcre2_code_free(code); }
};

namespace {

// Oniguruma's \s is Unicode White_Space; PCRE2's adds U+180E. The rewrite keeps every other
// escape (and \Q...\E quoting) as written.
std::string with_white_space_property(std::string_view pattern) {
  std::string out;
  out.reserve(pattern.size() + 16);
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] != '\\' || i + 1 == pattern.size()) {
      out.push_back(pattern[i]);
      continue;
    }
    const char escaped = pattern[++i];
    if (escaped == 's') {
      out += "\\p{White_Space}";
    } else if (escaped == 'S') {
      out += "\\P{White_Space}";
    } else if (escaped == 'Q') {
      const size_t end = pattern.find("\\E", i + 1);
      const size_t stop = end == std::string_view::npos ? pattern.size() : end + 2;
      out += pattern.substr(i - 1, stop - (i - 1));
      i = stop - 1;
    } else {
      out.push_back('\\');
      out.push_back(escaped);
    }
  }
  return out;
}

size_t code_point_length(std::string_view text, size_t pos) {
  size_t next = pos;
  next_code_point(text, next);
  return next - pos;
}

}  // namespace

StatusOr<Regex> Regex::build(const std::string& pattern, uint32_t options) {
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.c_str()), pattern.size(),
                                   options, &error_code, &error_offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error_code, message, sizeof(message));
    return invalid_argument("regular expression does not compile at offset {}: {}", error_offset,
                            reinterpret_cast<const char*>(message));
  }
  // The JIT is several times faster; where it is unavailable pcre2_match interprets instead.
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  auto holder = std::make_shared<Code>();
  holder->code = code;
  return Regex(std::move(holder));
}

StatusOr<Regex> Regex::compile(std::string_view pattern) {
  return build(with_white_space_property(pattern), PCRE2_UTF | PCRE2_UCP);
}

StatusOr<Regex> Regex::literal(std::string_view text) {
  return build(std::string(text), PCRE2_LITERAL | PCRE2_UTF);  // PCRE2 refuses UCP with LITERAL
}

void Regex::split_isolated(std::string_view text, std::vector<std::string_view>& pieces) const {
  if (text.empty()) return;
  pcre2_match_data* match = pcre2_match_data_create_from_pattern(code_->code, nullptr);
  MEGALITH_CHECK(match != nullptr, "out of memory for PCRE2 match data");
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t piece_start = 0;
  size_t search_from = 0;
  while (search_from <= text.size()) {
    const int rc = pcre2_match(code_->code, subject, text.size(), search_from, PCRE2_NO_UTF_CHECK,
                               match, nullptr);
    if (rc < 0) break;  // no further match, or a resource limit: the rest is one piece
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match);
    const size_t begin = ovector[0];
    const size_t end = ovector[1];
    if (begin > piece_start) pieces.push_back(text.substr(piece_start, begin - piece_start));
    if (end > begin) {
      pieces.push_back(text.substr(begin, end - begin));
      piece_start = search_from = end;
    } else {  // an empty match splits here; the search moves on by one character
      piece_start = begin;
      if (begin == text.size()) break;
      search_from = begin + code_point_length(text, begin);
    }
  }
  if (piece_start < text.size()) pieces.push_back(text.substr(piece_start));
  pcre2_match_data_free(match);
}

}  // namespace megalith::tokenizer_internal
