// Windows of buffers and the hazard tracker that finds, in program order, every earlier
// access a new access conflicts with. Shared by the dependency pass and the verifier.
#pragma once

#include <algorithm>
#include <cstdint>
#include <unordered_map>
#include <vector>

namespace megalith::compiler {

// Rows [row0, row0+rows) x columns [col0, col0+cols) of a space whose rows are `stride`
// units apart. Windows of one space with equal strides are compared exactly; otherwise by
// their hulls in the flat space (conservative: may see a conflict that is not there).
struct Window {
  int64_t space = 0;
  int64_t stride = 0;
  int64_t row0 = 0, rows = 0, col0 = 0, cols = 0;

  int64_t begin() const { return row0 * stride + col0; }
  int64_t end() const { return (row0 + rows - 1) * stride + col0 + cols; }
  bool contiguous() const { return rows == 1 || cols == stride; }
};

inline bool overlaps(const Window& a, const Window& b) {
  if (a.space != b.space || a.rows == 0 || b.rows == 0 || a.cols == 0 || b.cols == 0) return false;
  if (a.stride == b.stride) {
    return a.row0 < b.row0 + b.rows && b.row0 < a.row0 + a.rows && a.col0 < b.col0 + b.cols &&
           b.col0 < a.col0 + a.cols;
  }
  return a.begin() < b.end() && b.begin() < a.end();
}

// `w` minus `cut`, appended to `out` as up to four windows; `w` itself when they cannot be
// subtracted exactly (different strides, and `cut` does not cover `w` whole).
inline void subtract(const Window& w, const Window& cut, std::vector<Window>& out) {
  if (!overlaps(w, cut)) {
    out.push_back(w);
    return;
  }
  if (w.stride != cut.stride) {
    if (!(cut.contiguous() && cut.begin() <= w.begin() && w.end() <= cut.end())) out.push_back(w);
    return;
  }
  const int64_t r0 = std::max(w.row0, cut.row0), r1 = std::min(w.row0 + w.rows, cut.row0 + cut.rows);
  const int64_t c0 = std::max(w.col0, cut.col0), c1 = std::min(w.col0 + w.cols, cut.col0 + cut.cols);
  auto piece = [&](int64_t row0, int64_t row1, int64_t col0, int64_t col1) {
    if (row1 > row0 && col1 > col0) {
      out.push_back({w.space, w.stride, row0, row1 - row0, col0, col1 - col0});
    }
  };
  piece(w.row0, r0, w.col0, w.col0 + w.cols);                    // above
  piece(r1, w.row0 + w.rows, w.col0, w.col0 + w.cols);           // below
  piece(r0, r1, w.col0, c0);                                     // left
  piece(r0, r1, c1, w.col0 + w.cols);                            // right
}

enum class Hazard { kReadAfterWrite, kWriteAfterRead, kWriteAfterWrite };

// Feed tasks in program order; for each, every earlier task whose access conflicts is
// reported. Windows covered by a later write are forgotten: whatever conflicts with them
// later conflicts with that write, which is ordered after them. Consecutive reads of one
// window share a record, so a tensor read by thousands of tasks stays one record.
class HazardTracker {
 public:
  struct Access {
    Window window;
    bool read = false, write = false;
  };

  // `group` (sorted; empty for an ordinary task) names the tasks of a claimed op, which holds
  // `task`: any of them may write the op's windows, so they conflict with none of each other
  // and its writes are recorded as all of theirs.
  template <class OnConflict>
  void add_task(uint32_t task, const std::vector<Access>& accesses, OnConflict&& on_conflict,
                const std::vector<uint32_t>& group = {}) {
    for (const Access& a : accesses) {
      for (const Record& r : records_[a.window.space]) {
        if (!overlaps(r.window, a.window)) continue;
        for (uint32_t earlier : r.tasks) {
          if (earlier == task || std::binary_search(group.begin(), group.end(), earlier)) continue;
          if (a.read && r.write) on_conflict(earlier, Hazard::kReadAfterWrite);
          if (a.write) {
            on_conflict(earlier, r.write ? Hazard::kWriteAfterWrite : Hazard::kWriteAfterRead);
          }
        }
      }
    }
    for (const Access& a : accesses) {
      if (!a.write) continue;
      std::vector<Record>& records = records_[a.window.space];
      std::vector<Record> kept;
      std::vector<Window> pieces;
      for (Record& r : records) {
        if (!overlaps(r.window, a.window)) {
          kept.push_back(std::move(r));
          continue;
        }
        pieces.clear();
        subtract(r.window, a.window, pieces);
        for (const Window& w : pieces) kept.push_back({r.tasks, r.write, w});
      }
      records.swap(kept);
    }
    for (const Access& a : accesses) {
      std::vector<Record>& records = records_[a.window.space];
      if (a.write) {
        records.push_back({group.empty() ? std::vector<uint32_t>{task} : group, true, a.window});
      } else if (a.read) {
        if (!records.empty() && !records.back().write && same(records.back().window, a.window)) {
          if (records.back().tasks.back() != task) records.back().tasks.push_back(task);
        } else {
          records.push_back({{task}, false, a.window});
        }
      }
    }
  }

 private:
  struct Record {
    std::vector<uint32_t> tasks;  // one writer, or the readers of one window
    bool write;
    Window window;
  };
  static bool same(const Window& a, const Window& b) {
    return a.stride == b.stride && a.row0 == b.row0 && a.rows == b.rows && a.col0 == b.col0 &&
           a.cols == b.cols;
  }
  std::unordered_map<int64_t, std::vector<Record>> records_;
};

// Which of `targets` (sorted, distinct) are proper ancestors of any of `starts`, searching
// only nodes >= targets.front(). `for_each_pred(u, lowest, visit)` calls visit(p) for every
// direct predecessor p >= lowest of u (it may stop early on sorted lists).
class AncestorSearch {
 public:
  explicit AncestorSearch(size_t nodes) : mark_(nodes, 0) {}

  template <class ForEachPred>
  size_t find(const std::vector<uint32_t>& starts, const std::vector<uint32_t>& targets,
              std::vector<char>& found, ForEachPred&& for_each_pred) {
    found.assign(targets.size(), 0);
    if (targets.empty()) return 0;
    if (++stamp_ == 0) {
      std::fill(mark_.begin(), mark_.end(), 0);
      stamp_ = 1;
    }
    const uint32_t lowest = targets.front();
    size_t remaining = targets.size();
    // Starts are expanded lazily (depth first), so a search that finds its targets early
    // stops early. The high bit marks a start: expanded, not itself a candidate.
    constexpr uint32_t kStart = 0x80000000u;
    stack_.clear();
    for (uint32_t s : starts) stack_.push_back(s | kStart);
    auto push = [this, lowest](uint32_t p) {
      if (p >= lowest && mark_[p] != stamp_) stack_.push_back(p);
    };
    while (!stack_.empty() && remaining > 0) {
      const uint32_t top = stack_.back();
      stack_.pop_back();
      if (top & kStart) {
        for_each_pred(top & ~kStart, lowest, push);
        continue;
      }
      const uint32_t u = top;
      if (mark_[u] == stamp_) continue;
      mark_[u] = stamp_;
      const auto it = std::lower_bound(targets.begin(), targets.end(), u);
      if (it != targets.end() && *it == u && !found[size_t(it - targets.begin())]) {
        found[size_t(it - targets.begin())] = 1;
        --remaining;
      }
      for_each_pred(u, lowest, push);
    }
    return targets.size() - remaining;
  }

 private:
  std::vector<uint32_t> mark_;
  uint32_t stamp_ = 0;
  std::vector<uint32_t> stack_;
};

}  // namespace megalith::compiler
