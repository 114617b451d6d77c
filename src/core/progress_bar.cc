#include "megalith/core/progress_bar.h"

#include <unistd.h>

#include <algorithm>
#include <utility>

#include <fmt/format.h>

namespace megalith {

std::string format_progress(const std::string& label, uint64_t done, uint64_t total, int width,
                            ProgressUnit unit, const std::string& detail) {
  const double fraction = total == 0 ? 1.0 : std::min(1.0, double(done) / double(total));
  const int filled = int(fraction * width);
  std::string cells(size_t(std::max(width, 0)), ' ');
  std::fill(cells.begin(), cells.begin() + filled, '=');
  if (filled < width) cells[size_t(filled)] = '>';
  const std::string line = fmt::format("{} [{}] {:3.0f}%", label, cells, fraction * 100);
  if (unit == ProgressUnit::kSteps) {
    return fmt::format("{} {}/{}{}{}", line, done, total, detail.empty() ? "" : " ", detail);
  }
  return fmt::format("{} {:.1f}/{:.1f} GB", line, double(done) / 1e9, double(total) / 1e9);
}

ProgressBar::ProgressBar(std::string label, ProgressUnit unit)
    : ProgressBar(std::move(label), stderr, isatty(STDERR_FILENO) != 0, unit) {}

ProgressBar::ProgressBar(std::string label, std::FILE* out, bool enabled, ProgressUnit unit)
    : label_(std::move(label)), unit_(unit), out_(out), enabled_(enabled) {}

ProgressBar::~ProgressBar() { finish(); }

void ProgressBar::update(uint64_t done, uint64_t total, const std::string& detail) {
  done_ = done;
  total_ = total;
  detail_ = detail;
  if (!enabled_) return;
  // A few redraws a second are enough for the eye; the last one always draws.
  const auto now = std::chrono::steady_clock::now();
  if (drawn_ && done < total && now - last_ < std::chrono::milliseconds(100)) return;
  last_ = now;
  drawn_ = true;
  draw("");
}

void ProgressBar::finish() {
  if (!drawn_) return;
  draw("\n");
  drawn_ = false;
}

// "\x1b[K" clears what a longer previous line left to the right.
void ProgressBar::draw(const char* end) {
  std::fprintf(out_, "\r%s\x1b[K%s",
               format_progress(label_, done_, total_, 30, unit_, detail_).c_str(), end);
  std::fflush(out_);
}

}  // namespace megalith
