// The BPE model of tokenizer.json: a vocabulary, merges ranked by their order in the file, and
// the encoder of one pre-tokenized word. Merges are applied lowest rank first, leftmost first on
// ties (what Hugging Face's priority queue does), with a heap so a very long word stays
// O(n log n). Encoded words are cached because text repeats its words.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "json_fields.h"

namespace megalith::tokenizer_internal {

// Hash and equality that let a std::string-keyed map be searched with a std::string_view.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
template <typename T>
using StringMap = std::unordered_map<std::string, T, StringHash, std::equal_to<>>;

class BpeModel {
 public:
  BpeModel();
  BpeModel(BpeModel&&) noexcept;
  BpeModel& operator=(BpeModel&&) noexcept;
  ~BpeModel();

  // `model` is the tokenizer.json field.
  static StatusOr<BpeModel> parse(const Json& model, std::string_view path);

  // Appends the ids of one word, written in the byte-level alphabet. Thread-safe.
  void encode_word(std::string_view word, std::vector<int32_t>& ids) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;
  const std::string* id_to_token(int32_t id) const;
  // One past the largest id of the vocabulary.
  int32_t id_limit() const { return static_cast<int32_t>(tokens_.size()); }

 private:
  struct Merge {
    int32_t rank;
    int32_t merged_id;
  };
  struct WordCache;
  static uint64_t pair_key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(left) << 32) | static_cast<uint32_t>(right);
  }
  Status parse_vocab(const Json& vocab, const std::string& path);
  Status parse_merges(const Json& merges, const std::string& path);
  void merge_word(std::string_view word, std::vector<int32_t>& ids) const;

  StringMap<int32_t> vocab_;
  std::vector<std::optional<std::string>> tokens_;  // by id; ids may have holes
  std::unordered_map<uint64_t, Merge> merges_;
  std::optional<int32_t> unk_id_;
  bool fuse_unk_ = false;
  bool ignore_merges_ = false;
  std::unique_ptr<WordCache> cache_;
};

}  // namespace megalith::tokenizer_internal
