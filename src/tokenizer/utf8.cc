#include "utf8.h"

#include <utf8proc.h>

#include <cstdint>

namespace megalith::tokenizer_internal {
namespace {

// The length of the well-formed sequence a lead byte starts and the range its second byte must
// fall in (Unicode Table 3-7); length 0 for bytes that never start a sequence.
struct LeadByte {
  int length;
  uint8_t second_min;
  uint8_t second_max;
};

LeadByte lead_byte(uint8_t b) {
  if (b < 0x80) return {1, 0, 0};
  if (b >= 0xC2 && b <= 0xDF) return {2, 0x80, 0xBF};
  if (b == 0xE0) return {3, 0xA0, 0xBF};
  if (b == 0xED) return {3, 0x80, 0x9F};
  if (b >= 0xE1 && b <= 0xEF) return {3, 0x80, 0xBF};
  if (b == 0xF0) return {4, 0x90, 0xBF};
  if (b >= 0xF1 && b <= 0xF3) return {4, 0x80, 0xBF};
  if (b == 0xF4) return {4, 0x80, 0x8F};
  return {0, 0, 0};
}

// How many bytes from `pos` belong to the sequence started there: its full length when it is
// well-formed, otherwise the length of its maximal subpart (at least 1).
struct SequenceScan {
  size_t length;
  bool complete;
};

SequenceScan scan_sequence(std::string_view s, size_t pos) {
  const LeadByte lead = lead_byte(static_cast<uint8_t>(s[pos]));
  if (lead.length == 0) return {1, false};
  size_t n = 1;
  while (n < static_cast<size_t>(lead.length) && pos + n < s.size()) {
    const auto c = static_cast<uint8_t>(s[pos + n]);
    const uint8_t lo = n == 1 ? lead.second_min : 0x80;
    const uint8_t hi = n == 1 ? lead.second_max : 0xBF;
    if (c < lo || c > hi) break;
    ++n;
  }
  return {n, n == static_cast<size_t>(lead.length)};
}

}  // namespace

size_t append_repaired_utf8(std::string_view bytes, bool at_end, std::string& out) {
  size_t pos = 0;
  while (pos < bytes.size()) {
    if (static_cast<uint8_t>(bytes[pos]) < 0x80) {
      out.push_back(bytes[pos++]);
      continue;
    }
    const SequenceScan scan = scan_sequence(bytes, pos);
    if (scan.complete) {
      out.append(bytes.substr(pos, scan.length));
    } else if (pos + scan.length == bytes.size() && !at_end &&
               lead_byte(static_cast<uint8_t>(bytes[pos])).length != 0) {
      break;  // a valid start that the next bytes may complete
    } else {
      out.append(kReplacementCharacter);
    }
    pos += scan.length;
  }
  return pos;
}

bool is_valid_utf8(std::string_view bytes) {
  for (size_t pos = 0; pos < bytes.size();) {
    if (static_cast<uint8_t>(bytes[pos]) < 0x80) {
      ++pos;
      continue;
    }
    const SequenceScan scan = scan_sequence(bytes, pos);
    if (!scan.complete) return false;
    pos += scan.length;
  }
  return true;
}

char32_t next_code_point(std::string_view text, size_t& pos) {
  const auto lead = static_cast<uint8_t>(text[pos]);
  if (lead < 0x80) return text[pos++];
  const SequenceScan scan = scan_sequence(text, pos);
  if (!scan.complete) {
    pos += scan.length;
    return 0xFFFD;
  }
  char32_t c = lead & (0x7F >> scan.length);
  for (size_t i = 1; i < scan.length; ++i)
    c = (c << 6) | (static_cast<uint8_t>(text[pos + i]) & 0x3F);
  pos += scan.length;
  return c;
}

bool is_white_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

bool is_word_character(char32_t c) {
  if (c == '_') return true;
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
      return true;
    default:
      return false;
  }
}

std::string_view trim_white_space(std::string_view text) {
  size_t begin = 0;
  while (begin < text.size()) {
    size_t next = begin;
    if (!is_white_space(next_code_point(text, next))) break;
    begin = next;
  }
  size_t end = begin;
  for (size_t pos = begin; pos < text.size();) {
    if (!is_white_space(next_code_point(text, pos))) end = pos;
  }
  return text.substr(begin, end - begin);
}

}  // namespace megalith::tokenizer_internal
