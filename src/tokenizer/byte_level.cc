#include "byte_level.h"

#include <array>
#include <cstdint>

#include "utf8.h"

namespace megalith::tokenizer_internal {
namespace {

constexpr char32_t kFirstShiftedSymbol = 0x100;
constexpr size_t kSymbolSpan = 0x100 + 68;  // 256 bytes, 68 of them shifted above U+00FF

bool stands_for_itself(int b) {
  return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

struct Alphabet {
  std::array<std::string, 256> symbol_of_byte;
  std::array<int16_t, kSymbolSpan> byte_of_symbol;  // -1: not a symbol

  Alphabet() {
    byte_of_symbol.fill(-1);
    char32_t next_shifted = kFirstShiftedSymbol;
    for (int b = 0; b < 256; ++b) {
      const char32_t symbol = stands_for_itself(b) ? static_cast<char32_t>(b) : next_shifted++;
      byte_of_symbol[symbol] = static_cast<int16_t>(b);
      std::string& utf8 = symbol_of_byte[b];
      if (symbol < 0x80) {
        utf8.push_back(static_cast<char>(symbol));
      } else {  // every symbol is below U+0800: two bytes
        utf8.push_back(static_cast<char>(0xC0 | (symbol >> 6)));
        utf8.push_back(static_cast<char>(0x80 | (symbol & 0x3F)));
      }
    }
  }
};

const Alphabet& alphabet() {
  static const Alphabet instance;
  return instance;
}

}  // namespace

void append_byte_symbols(std::string_view bytes, std::string& out) {
  const Alphabet& a = alphabet();
  for (char b : bytes) out += a.symbol_of_byte[static_cast<uint8_t>(b)];
}

bool append_symbol_bytes(std::string_view token, std::string& out) {
  const Alphabet& a = alphabet();
  const size_t start = out.size();
  for (size_t pos = 0; pos < token.size();) {
    const char32_t c = next_code_point(token, pos);
    if (c >= kSymbolSpan || a.byte_of_symbol[c] < 0) {
      out.resize(start);
      return false;
    }
    out.push_back(static_cast<char>(a.byte_of_symbol[c]));
  }
  return true;
}

}  // namespace megalith::tokenizer_internal
