// The text of one generation request, handed from the engine worker that makes it to the
// connection thread that sends it: tokens are decoded into whole UTF-8 characters, cut at the
// first stop string, and queued for the reader.
//
//   auto text = std::make_shared<TextStream>(tokenizer, std::vector<std::string>{"\n\n"});
//   request.options.on_token = [text](int32_t id) { text->add_token(id); };      // worker
//   request.options.should_stop = [text] { return text->should_stop(); };
//   request.on_done = [text](StatusOr<GenerationResult> r) { text->finish(std::move(r)); };
//   std::string piece;
//   for (TextStream::Next n; (n = text->next_for(piece, 200ms)) != TextStream::Next::kEnded;)
//     if (n == TextStream::Next::kText) send(piece);                               // reader
//   const StatusOr<GenerationResult>& result = text->result();
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "megalith/core/status.h"
#include "megalith/engine/generation.h"
#include "megalith/tokenizer/tokenizer.h"

namespace megalith {

// Passes text through up to the first occurrence of any stop string, which is left out with
// everything after it. A tail that could be the start of a stop string is held back until the
// next piece shows whether it is one, so no part of a stop string is ever released.
class StopStringFilter {
 public:
  explicit StopStringFilter(std::vector<std::string> stops) : stops_(std::move(stops)) {}

  // The text that `piece` releases; empty once a stop string was seen.
  std::string add(std::string_view piece);
  // The held-back tail: the text ended without completing a stop string.
  std::string flush();
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string pending_;
  bool stopped_ = false;
};

class TextStream {
 public:
  // `tokenizer` must outlive the stream.
  TextStream(const Tokenizer& tokenizer, std::vector<std::string> stop_strings);

  // The worker's side, in this order: add_token() for each token, then finish() once.
  void add_token(int32_t id);
  // Whether generation should end: a stop string was seen, or the reader cancelled.
  bool should_stop() const;
  void finish(StatusOr<GenerationResult> result);

  // The reader's side: waits up to `wait` for text (kText), the end of the request (kEnded) or
  // neither (kWaiting), so the reader can look after its client in between.
  enum class Next { kText, kEnded, kWaiting };
  Next next_for(std::string& text, std::chrono::milliseconds wait);
  // Once next() returned false: how generation ended.
  const StatusOr<GenerationResult>& result() const { return *result_; }
  // The reader is gone: generation should end as soon as it can.
  void cancel() { cancelled_ = true; }

 private:
  void publish(std::string text);

  StreamDecoder decoder_;    // worker only
  StopStringFilter filter_;  // worker only
  std::atomic<bool> cancelled_{false};
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::string> pieces_;                    // guarded by mutex_
  std::optional<StatusOr<GenerationResult>> result_;  // guarded by mutex_; set once, at the end
};

}  // namespace megalith
