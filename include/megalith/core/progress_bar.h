// A one-line progress bar on stderr for long loads (weights, checkpoints) and the compiler's
// passes. It draws only when stderr is a terminal, so logs and pipes stay clean, and at most a
// few times a second.
//
//   ProgressBar bar("uploading weights");
//   for (...) bar.update(done_bytes, total_bytes);
//   bar.finish();                        // ends the line (also done by the destructor)
//   ProgressBar passes("compiling", ProgressUnit::kSteps);
//   passes.update(2, 6, "placement");     // "compiling [==========>   ]  33% 2/6 placement"
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace megalith {

enum class ProgressUnit { kBytes, kSteps };

// "label [=========>          ]  45%  7.2/16.1 GB" (bytes) or "label [...]  45% 3/6 detail"
// (steps): the line a bar draws, `width` cells wide.
std::string format_progress(const std::string& label, uint64_t done, uint64_t total, int width,
                            ProgressUnit unit = ProgressUnit::kBytes, const std::string& detail = "");

class ProgressBar {
 public:
  // `out` is drawn on only when `enabled`; by default, stderr when it is a terminal.
  explicit ProgressBar(std::string label, ProgressUnit unit = ProgressUnit::kBytes);
  ProgressBar(std::string label, std::FILE* out, bool enabled,
              ProgressUnit unit = ProgressUnit::kBytes);
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  void update(uint64_t done, uint64_t total, const std::string& detail = "");
  void finish();

 private:
  void draw(const char* end);

  std::string label_, detail_;
  ProgressUnit unit_;
  std::FILE* out_;
  bool enabled_, drawn_ = false;
  uint64_t done_ = 0, total_ = 0;
  std::chrono::steady_clock::time_point last_{};
};

}  // namespace megalith
