// The Hugging Face tokenizer.json byte-level BPE tokenizer of Llama-3, Qwen2/3 and GPT-2-style
// checkpoints: added/special tokens, the Unicode normalizer (Qwen's NFC), the pre-tokenizer
// regex (run with PCRE2), byte-level BPE merges and the post-processor, giving the ids the
// Python `tokenizers` package gives. docs/tokenizer.md lists what is supported.
//
//   MEGALITH_ASSIGN_OR_RETURN(Tokenizer tok, Tokenizer::load(model_dir / "tokenizer.json"));
//   std::vector<int32_t> ids = tok.encode("Hello world", /*add_special_tokens=*/true);
//   std::string text = tok.decode(ids, /*skip_special_tokens=*/true);
//
//   StreamDecoder stream(tok, /*skip_special_tokens=*/true);
//   for (int32_t id : generated) std::cout << stream.add(id);  // whole characters only
//   std::cout << stream.flush();
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "megalith/core/status.h"

namespace megalith {

class Tokenizer {
 public:
  // Reads a tokenizer.json. A file that is missing, malformed or uses a component megalith does
  // not implement gives an error naming the file and the field.
  static StatusOr<Tokenizer> load(const std::filesystem::path& tokenizer_json);
  // The same from the file's text; `source` names it in errors.
  static StatusOr<Tokenizer> from_json(std::string_view json_text, std::string_view source);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // The ids of `text`. Added tokens written in the text (<|im_start|>, ...) become their ids;
  // add_special_tokens runs the post-processor (Llama-3 prepends <|begin_of_text|>). Ill-formed
  // UTF-8 in `text` is read as U+FFFD, as Python's errors="replace" reads it. Thread-safe.
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens) const;

  // The text of `ids`; byte sequences that are not valid UTF-8 come out as U+FFFD. Ids that
  // are no token are left out, as Hugging Face leaves them out. skip_special_tokens drops added
  // tokens marked special (Qwen3's <think> is not special and stays).
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens) const;

  // The words the pre-tokenizer alone makes of `text`, in the byte-level alphabet (no
  // normalizer, no added tokens): Hugging Face's pre_tokenize_str, for tests and debugging.
  std::vector<std::string> pre_tokenize(std::string_view text) const;

  // Lookups by the token as written in tokenizer.json ("<|eot_id|>", "Ġhello"); added tokens
  // take precedence over the model's vocabulary, as in Hugging Face.
  std::optional<int32_t> token_to_id(std::string_view token) const;
  std::optional<std::string> id_to_token(int32_t id) const;
  // The id of a token the caller needs (a BOS or EOS named in tokenizer_config.json), or an
  // error naming the token.
  StatusOr<int32_t> required_token_id(std::string_view token) const;
  bool is_special(int32_t id) const;

  // One past the largest id: the rows an embedding table needs.
  int32_t vocab_size() const;

  struct Impl;  // the loaded stages, defined in src/tokenizer

 private:
  friend class StreamDecoder;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  // Appends the bytes `id` stands for, before any UTF-8 repair.
  void append_token_bytes(int32_t id, bool skip_special_tokens, std::string& bytes) const;

  std::unique_ptr<Impl> impl_;
};

// Decodes generated ids one at a time into text that is always whole UTF-8 characters: bytes of
// a character split across tokens are held back until it is complete. The concatenation of
// everything add() and flush() return equals Tokenizer::decode of all the ids.
class StreamDecoder {
 public:
  // `tokenizer` must outlive the decoder.
  StreamDecoder(const Tokenizer& tokenizer, bool skip_special_tokens);

  // The text that `id` completes; may be empty.
  std::string add(int32_t id);
  // Whatever is held back, an unfinished character as U+FFFD; the decoder is then empty.
  std::string flush();

 private:
  const Tokenizer* tokenizer_;
  bool skip_special_tokens_;
  std::string pending_;  // bytes of an unfinished character
};

}  // namespace megalith
