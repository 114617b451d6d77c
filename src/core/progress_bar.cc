#include "megalith/core/progress_bar.h"

#include <unistd.h>

#include <algorithm>
#include <utility>

#include <fmt/format.h>

namespace megalith {

std::string format_progress(const std::string& label, uint64_t done, uint64_t total, int width) {
  const double fraction = total == 0 ? 1.0 : std::min(1.0, double(done) / double(total));
  const int filled = int(fraction * width);
  std::string cells(size_t(std::max(width, 0)), ' ');
  std::fill(cells.begin(), cells.begin() + filled, '=');
  if (filled < width) cells[size_t(filled)] = '>';
  return fmt::format("{} [{}] {:3.0f}% {:.1f}/{:.1f} GB", label, cells, fraction * 100,
                     double(done) / 1e9, double(total) / 1e9);
}

ProgressBar::ProgressBar(std::string label)
    : ProgressBar(std::move(label), stderr, isatty(STDERR_FILENO) != 0) {}

ProgressBar::ProgressBar(std::string label, std::FILE* out, bool enabled)
    : label_(std::move(label)), out_(out), enabled_(enabled) {}

ProgressBar::~ProgressBar() { finish(); }

void ProgressBar::update(uint64_t done, uint64_t total) {
  done_ = done;
  total_ = total;
  if (!enabled_) return;
  // A few redraws a second are enough for the eye; the last one always draws.
  const auto now = std::chrono::steady_clock::now();
  if (drawn_ && done < total && now - last_ < std::chrono::milliseconds(100)) return;
  last_ = now;
  drawn_ = true;
  std::fprintf(out_, "\r%s", format_progress(label_, done, total, 30).c_str());
  std::fflush(out_);
}

void ProgressBar::finish() {
  if (!drawn_) return;
  std::fprintf(out_, "\r%s\n", format_progress(label_, done_, total_, 30).c_str());
  std::fflush(out_);
  drawn_ = false;
}

}  // namespace megalith
