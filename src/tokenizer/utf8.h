// UTF-8 helpers for the tokenizer. Ill-formed bytes are repaired the way Python's
// errors="replace" and Rust's String::from_utf8_lossy repair them: every maximal subpart of an
// ill-formed sequence becomes one U+FFFD. decode() has to match Hugging Face byte for byte, and
// this rule is local, so the streaming decoder gives the same text however the bytes arrive.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace megalith::tokenizer_internal {

inline constexpr std::string_view kReplacementCharacter = "\xEF\xBF\xBD";

// Appends `bytes` to `out` with ill-formed sequences replaced, and returns how many bytes it
// consumed. Unless `at_end`, a trailing sequence that is incomplete but could still become valid
// is held back (not consumed), for the caller to retry when more bytes arrive.
size_t append_repaired_utf8(std::string_view bytes, bool at_end, std::string& out);

bool is_valid_utf8(std::string_view bytes);

// Decodes the code point at `text[pos]` and advances `pos` past it. `text` must be valid UTF-8;
// a stray byte reads as U+FFFD so that no input overruns the buffer.
char32_t next_code_point(std::string_view text, size_t& pos);

// Unicode White_Space, the set Rust's char::is_whitespace tests (lstrip/rstrip of added tokens).
bool is_white_space(char32_t c);

// Letters, numbers and '_': what Hugging Face counts as part of a word for single_word tokens.
bool is_word_character(char32_t c);

// `text` without leading and trailing White_Space.
std::string_view trim_white_space(std::string_view text);

}  // namespace megalith::tokenizer_internal
