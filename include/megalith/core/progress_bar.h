// A one-line progress bar on stderr for long loads (weights, checkpoints). It draws only when
// stderr is a terminal, so logs and pipes stay clean, and at most a few times a second.
//
//   ProgressBar bar("uploading weights");
//   for (...) bar.update(done_bytes, total_bytes);
//   bar.finish();                        // ends the line (also done by the destructor)
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace megalith {

// "label [=========>          ]  45%  7.2/16.1 GB": the line a bar draws, `width` cells wide.
std::string format_progress(const std::string& label, uint64_t done, uint64_t total, int width);

class ProgressBar {
 public:
  // `out` is drawn on only when `enabled`; by default, stderr when it is a terminal.
  explicit ProgressBar(std::string label);
  ProgressBar(std::string label, std::FILE* out, bool enabled);
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  void update(uint64_t done, uint64_t total);
  void finish();

 private:
  std::string label_;
  std::FILE* out_;
  bool enabled_, drawn_ = false;
  uint64_t done_ = 0, total_ = 0;
  std::chrono::steady_clock::time_point last_{};
};

}  // namespace megalith
