#include "megalith/server/text_stream.h"

#include <algorithm>

namespace megalith {

std::string StopStringFilter::add(std::string_view piece) {
  if (stopped_) return {};
  pending_ += piece;
  // Released text never holds a stop string nor ends with the start of one, so an occurrence
  // lies wholly inside pending_.
  size_t cut = std::string::npos;
  for (const std::string& stop : stops_) cut = std::min(cut, pending_.find(stop));
  if (cut != std::string::npos) {
    stopped_ = true;
    std::string out = pending_.substr(0, cut);
    pending_.clear();
    return out;
  }
  size_t held = 0;  // the longest tail that is a proper prefix of a stop string
  for (const std::string& stop : stops_) {
    for (size_t n = std::min(stop.size() - 1, pending_.size()); n > held; --n) {
      if (pending_.ends_with(std::string_view(stop).substr(0, n))) {
        held = n;
        break;
      }
    }
  }
  std::string out = pending_.substr(0, pending_.size() - held);
  pending_.erase(0, pending_.size() - held);
  return out;
}

std::string StopStringFilter::flush() {
  std::string out;
  out.swap(pending_);
  return out;
}

TextStream::TextStream(const Tokenizer& tokenizer, std::vector<std::string> stop_strings)
    : decoder_(tokenizer, /*skip_special_tokens=*/true), filter_(std::move(stop_strings)) {}

void TextStream::add_token(int32_t id) { publish(filter_.add(decoder_.add(id))); }

bool TextStream::should_stop() const { return filter_.stopped() || cancelled_; }

void TextStream::finish(StatusOr<GenerationResult> result) {
  publish(filter_.add(decoder_.flush()) + filter_.flush());
  std::lock_guard lock(mutex_);
  result_ = std::move(result);
  changed_.notify_all();
}

void TextStream::publish(std::string text) {
  if (text.empty()) return;
  std::lock_guard lock(mutex_);
  pieces_.push_back(std::move(text));
  changed_.notify_all();
}

TextStream::Next TextStream::next_for(std::string& text, std::chrono::milliseconds wait) {
  std::unique_lock lock(mutex_);
  if (!changed_.wait_for(lock, wait, [this] { return !pieces_.empty() || result_.has_value(); })) {
    return Next::kWaiting;
  }
  if (pieces_.empty()) return Next::kEnded;
  text = std::move(pieces_.front());
  pieces_.pop_front();
  return Next::kText;
}

}  // namespace megalith
