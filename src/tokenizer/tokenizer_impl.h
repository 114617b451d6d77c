// The parts of a loaded Tokenizer, in the order encode() runs them.
#pragma once

#include "added_tokens.h"
#include "bpe_model.h"
#include "megalith/tokenizer/tokenizer.h"
#include "normalizer.h"
#include "post_processor.h"
#include "pre_tokenizer.h"

namespace megalith {

struct Tokenizer::Impl {
  tokenizer_internal::AddedTokens added_tokens;
  tokenizer_internal::Normalizer normalizer;
  tokenizer_internal::PreTokenizer pre_tokenizer;
  tokenizer_internal::BpeModel model;
  tokenizer_internal::PostProcessor post_processor;
};

}  // namespace megalith
