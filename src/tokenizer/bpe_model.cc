#include "bpe_model.h"

#include <mutex>
#include <queue>

#include "utf8.h"

namespace megalith::tokenizer_internal {

// Words seen before and their ids. Emptied when full, so a long-running server keeps caching
// the words of its current traffic.
struct BpeModel::WordCache {
  static constexpr size_t kCapacity = 10000;
  static constexpr size_t kMaxWordBytes = 256;
  std::mutex mutex;
  StringMap<std::vector<int32_t>> words;
};

BpeModel::BpeModel() : cache_(std::make_unique<WordCache>()) {}
BpeModel::BpeModel(BpeModel&&) noexcept = default;
BpeModel& BpeModel::operator=(BpeModel&&) noexcept = default;
BpeModel::~BpeModel() = default;

Status BpeModel::parse_vocab(const Json& vocab, const std::string& path) {
  if (!vocab.is_object()) {
    return invalid_argument("{} must be an object of token: id, not {}", path,
                            json_type_name(vocab));
  }
  vocab_.reserve(vocab.size());
  for (const auto& [token, id_value] : vocab.items()) {
    MEGALITH_ASSIGN_OR_RETURN(int32_t id, token_id(id_value, field_path(path, token)));
    vocab_.emplace(token, id);
    if (static_cast<size_t>(id) >= tokens_.size()) tokens_.resize(static_cast<size_t>(id) + 1);
    if (!tokens_[id]) tokens_[id] = token;  // of tokens sharing an id, the first in key order
  }
  return Status::ok_status();
}

Status BpeModel::parse_merges(const Json& merges, const std::string& path) {
  if (!merges.is_array()) {
    return invalid_argument("{} must be an array, not {}", path, json_type_name(merges));
  }
  merges_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const Json& merge = merges[rank];
    const std::string merge_path = element_path(path, rank);
    std::string left, right;
    if (merge.is_string()) {  // the legacy "left right" form
      const std::string& text = merge.get_ref<const std::string&>();
      const size_t space = text.find(' ');
      if (space == std::string::npos || text.find(' ', space + 1) != std::string::npos) {
        return invalid_argument("{} must be two tokens separated by one space, not \"{}\"",
                                merge_path, text);
      }
      left = text.substr(0, space);
      right = text.substr(space + 1);
    } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() &&
               merge[1].is_string()) {
      left = merge[0].get<std::string>();
      right = merge[1].get<std::string>();
    } else {
      return invalid_argument("{} must be \"left right\" or [\"left\", \"right\"]", merge_path);
    }
    const auto left_id = token_to_id(left);
    const auto right_id = token_to_id(right);
    const auto merged_id = token_to_id(left + right);
    for (const auto& [token, id] : {std::pair{left, left_id}, std::pair{right, right_id},
                                    std::pair{left + right, merged_id}}) {
      if (!id) {
        return invalid_argument("{}: token \"{}\" is not in model.vocab", merge_path, token);
      }
    }
    // A repeated merge takes the later rank, as Hugging Face's map insertion does.
    merges_[pair_key(*left_id, *right_id)] = {static_cast<int32_t>(rank), *merged_id};
  }
  return Status::ok_status();
}

StatusOr<BpeModel> BpeModel::parse(const Json& model, std::string_view path_view) {
  const std::string path(path_view);
  if (!model.is_object()) {
    return invalid_argument("{} must be an object, not {}", path, json_type_name(model));
  }
  // Old files leave the type out; a model with merges is BPE.
  const Json* type = optional_field(model, "type");
  if (type != nullptr && *type != "BPE") {
    return unimplemented("{}.type {} is not supported (only \"BPE\" is)", path, type->dump());
  }
  if (const Json* dropout = optional_field(model, "dropout");
      dropout != nullptr && (!dropout->is_number() || dropout->get<double>() != 0.0)) {
    return unimplemented("{}.dropout {} is not supported: encoding must be deterministic", path,
                         dropout->dump());
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    const Json* affix = optional_field(model, key);
    if (affix != nullptr && !(affix->is_string() && affix->get<std::string>().empty())) {
      return unimplemented("{} {} is not supported (byte-level BPE has none)",
                           field_path(path, key), affix->dump());
    }
  }
  MEGALITH_ASSIGN_OR_RETURN(bool byte_fallback, bool_or(model, "byte_fallback", false, path));
  if (byte_fallback) {
    return unimplemented("{}.byte_fallback true is not supported (byte-level BPE needs none)",
                         path);
  }
  BpeModel result;
  MEGALITH_ASSIGN_OR_RETURN(result.fuse_unk_, bool_or(model, "fuse_unk", false, path));
  MEGALITH_ASSIGN_OR_RETURN(result.ignore_merges_, bool_or(model, "ignore_merges", false, path));
  MEGALITH_ASSIGN_OR_RETURN(const Json* vocab, required_field(model, "vocab", path));
  MEGALITH_RETURN_IF_ERROR(result.parse_vocab(*vocab, field_path(path, "vocab")));
  MEGALITH_ASSIGN_OR_RETURN(const Json* merges, required_field(model, "merges", path));
  MEGALITH_RETURN_IF_ERROR(result.parse_merges(*merges, field_path(path, "merges")));
  if (const Json* unk = optional_field(model, "unk_token"); unk != nullptr) {
    if (!unk->is_string()) return invalid_argument("{}.unk_token must be a string or null", path);
    result.unk_id_ = result.token_to_id(unk->get<std::string>());
    if (!result.unk_id_) {
      return invalid_argument("{}.unk_token \"{}\" is not in model.vocab", path,
                              unk->get<std::string>());
    }
  }
  return result;
}

std::optional<int32_t> BpeModel::token_to_id(std::string_view token) const {
  const auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::id_to_token(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= tokens_.size() || !tokens_[id]) return nullptr;
  return &*tokens_[id];
}

void BpeModel::encode_word(std::string_view word, std::vector<int32_t>& ids) const {
  if (ignore_merges_) {
    if (const auto id = token_to_id(word)) {
      ids.push_back(*id);
      return;
    }
  }
  const bool cacheable = word.size() <= WordCache::kMaxWordBytes;
  if (cacheable) {
    std::lock_guard lock(cache_->mutex);
    if (const auto it = cache_->words.find(word); it != cache_->words.end()) {
      ids.insert(ids.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t first = ids.size();
  merge_word(word, ids);
  if (cacheable) {
    std::lock_guard lock(cache_->mutex);
    if (cache_->words.size() >= WordCache::kCapacity) cache_->words.clear();
    cache_->words.emplace(word, std::vector<int32_t>(ids.begin() + first, ids.end()));
  }
}

void BpeModel::merge_word(std::string_view word, std::vector<int32_t>& ids) const {
  // The word's characters as a linked list of symbols; merging unlinks the right symbol.
  struct Symbol {
    int32_t id;
    int32_t prev;
    int32_t next;
  };
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  bool last_was_unk = false;
  for (size_t pos = 0; pos < word.size();) {
    const size_t start = pos;
    next_code_point(word, pos);
    std::optional<int32_t> id = token_to_id(word.substr(start, pos - start));
    const bool unk = !id;
    if (unk) {
      // A character the vocabulary lacks becomes unk_token when there is one and is dropped
      // otherwise, as in Hugging Face; fuse_unk folds a run of them into one.
      if (!unk_id_ || (fuse_unk_ && last_was_unk)) continue;
      id = unk_id_;
    }
    last_was_unk = unk;
    const auto index = static_cast<int32_t>(symbols.size());
    symbols.push_back({*id, index - 1, index + 1});
  }
  if (symbols.empty()) return;
  symbols.back().next = -1;

  struct Candidate {
    int32_t rank;
    int32_t left;  // index of the left symbol; ties go to the leftmost
    int32_t left_id;
    int32_t right_id;
    int32_t merged_id;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : left > o.left;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
  const auto push_pair = [&](int32_t left) {
    if (left < 0 || symbols[left].next < 0) return;
    const int32_t right = symbols[left].next;
    const auto it = merges_.find(pair_key(symbols[left].id, symbols[right].id));
    if (it == merges_.end()) return;
    queue.push({it->second.rank, left, symbols[left].id, symbols[right].id, it->second.merged_id});
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(symbols.size()); ++i) push_pair(i);

  while (!queue.empty()) {
    const Candidate c = queue.top();
    queue.pop();
    Symbol& left = symbols[c.left];
    // A candidate is stale once either side took part in another merge.
    if (left.id != c.left_id || left.next < 0 || symbols[left.next].id != c.right_id) continue;
    const int32_t right_index = left.next;
    left.id = c.merged_id;
    left.next = symbols[right_index].next;
    if (left.next >= 0) symbols[left.next].prev = c.left;
    symbols[right_index].id = -1;  // unlinked
    if (left.prev >= 0) push_pair(left.prev);
    push_pair(c.left);
  }
  for (int32_t i = 0; i >= 0; i = symbols[i].next) ids.push_back(symbols[i].id);
}

}  // namespace megalith::tokenizer_internal
