#include "megalith/tokenizer/tokenizer.h"
#include "utf8.h"

namespace megalith {

StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, bool skip_special_tokens)
    : tokenizer_(&tokenizer), skip_special_tokens_(skip_special_tokens) {}

std::string StreamDecoder::add(int32_t id) {
  tokenizer_->append_token_bytes(id, skip_special_tokens_, pending_);
  std::string text;
  const size_t consumed =
      tokenizer_internal::append_repaired_utf8(pending_, /*at_end=*/false, text);
  pending_.erase(0, consumed);
  return text;
}

std::string StreamDecoder::flush() {
  std::string text;
  tokenizer_internal::append_repaired_utf8(pending_, /*at_end=*/true, text);
  pending_.clear();
  return text;
}

}  // namespace megalith
