// The GPT-2 byte alphabet that byte-level BPE vocabularies are written in. Every byte stands for
// one printable character (printable Latin-1 bytes for themselves, the rest for U+0100 onwards),
// so any byte string, valid UTF-8 or not, is a string of vocabulary symbols: no input is ever
// unknown to the model.
#pragma once

#include <string>
#include <string_view>

namespace megalith::tokenizer_internal {

// Appends the UTF-8 of the symbol of each byte of `bytes`.
void append_byte_symbols(std::string_view bytes, std::string& out);

// Appends the bytes the symbols of `token` stand for. Returns false, appending nothing, when a
// character of `token` is not in the alphabet (an added token such as "<think> " with a raw
// space); Hugging Face then takes the token's own UTF-8 bytes.
bool append_symbol_bytes(std::string_view token, std::string& out);

}  // namespace megalith::tokenizer_internal
