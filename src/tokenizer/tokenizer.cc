// Tokenizer::encode and decode: the stages of tokenizer_impl.h run in Hugging Face's order.
#include "byte_level.h"
#include "tokenizer_impl.h"
#include "utf8.h"

namespace megalith {

using tokenizer_internal::Segment;

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  std::string repaired;
  if (!tokenizer_internal::is_valid_utf8(text)) {
    tokenizer_internal::append_repaired_utf8(text, /*at_end=*/true, repaired);
    text = repaired;
  }
  std::vector<int32_t> ids;
  std::vector<Segment> raw_segments, normalized_segments;
  std::vector<std::string> words;
  // Tokens with normalized=false are cut out of the raw text; each stretch between them is
  // normalized and then cut at the normalized tokens.
  impl_->added_tokens.split(text, /*normalized=*/false, raw_segments);
  for (const Segment& raw : raw_segments) {
    if (raw.id >= 0) {
      ids.push_back(raw.id);
      continue;
    }
    const std::string normalized = impl_->normalizer.apply(raw.text);
    normalized_segments.clear();
    impl_->added_tokens.split(normalized, /*normalized=*/true, normalized_segments);
    for (const Segment& segment : normalized_segments) {
      if (segment.id >= 0) {
        ids.push_back(segment.id);
        continue;
      }
      words.clear();
      impl_->pre_tokenizer.split(segment.text, words);
      for (const std::string& word : words) impl_->model.encode_word(word, ids);
    }
  }
  if (add_special_tokens) impl_->post_processor.apply(ids);
  return ids;
}

void Tokenizer::append_token_bytes(int32_t id, bool skip_special_tokens, std::string& bytes) const {
  const std::string* token = nullptr;
  if (const auto* added = impl_->added_tokens.find(id)) {
    if (skip_special_tokens && added->special) return;
    token = &added->content;
  } else {
    token = impl_->model.id_to_token(id);
    if (token == nullptr) return;
    // Hugging Face skips by content, so a model token spelled like a special token goes too.
    const auto* same = impl_->added_tokens.find(*token);
    if (skip_special_tokens && same != nullptr && same->special) return;
  }
  if (!tokenizer_internal::append_symbol_bytes(*token, bytes)) bytes += *token;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  std::string bytes;
  for (int32_t id : ids) append_token_bytes(id, skip_special_tokens, bytes);
  std::string text;
  tokenizer_internal::append_repaired_utf8(bytes, /*at_end=*/true, text);
  return text;
}

std::vector<std::string> Tokenizer::pre_tokenize(std::string_view text) const {
  std::string repaired;
  if (!tokenizer_internal::is_valid_utf8(text)) {
    tokenizer_internal::append_repaired_utf8(text, /*at_end=*/true, repaired);
    text = repaired;
  }
  std::vector<std::string> words;
  impl_->pre_tokenizer.split(text, words);
  return words;
}

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  if (const auto* added = impl_->added_tokens.find(token)) return added->id;
  return impl_->model.token_to_id(token);
}

std::optional<std::string> Tokenizer::id_to_token(int32_t id) const {
  if (const auto* added = impl_->added_tokens.find(id)) return added->content;
  if (const std::string* token = impl_->model.id_to_token(id)) return *token;
  return std::nullopt;
}

StatusOr<int32_t> Tokenizer::required_token_id(std::string_view token) const {
  if (const auto id = token_to_id(token)) return *id;
  return not_found("the tokenizer has no token \"{}\"", token);
}

bool Tokenizer::is_special(int32_t id) const {
  const auto* added = impl_->added_tokens.find(id);
  return added != nullptr && added->special;
}

int32_t Tokenizer::vocab_size() const {
  int32_t limit = impl_->model.id_limit();
  for (const auto& token : impl_->added_tokens.all()) limit = std::max(limit, token.id + 1);
  return limit;
}

}  // namespace megalith
