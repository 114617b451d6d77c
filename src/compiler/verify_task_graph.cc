#include "megalith/compiler/verify_task_graph.h"

#include <fmt/format.h>

#include <algorithm>

#include "megalith/compiler/claimed_rows.h"
#include "regions.h"

namespace megalith {

namespace {

using abi::EventWait;
using abi::TaskDesc;
using compiler::Hazard;
using compiler::HazardTracker;

size_t ref_elem_size(abi::RefType t) { return elem_size(ElemType(uint8_t(t))); }

class Verifier {
 public:
  explicit Verifier(const TaskGraph& tg) : tg_(tg), producers_(tg.events.size()) {}

  Status run() {
    MEGALITH_RETURN_IF_ERROR(check_sizes());
    for (uint32_t t = 0; t < tg_.tasks.size(); ++t) MEGALITH_RETURN_IF_ERROR(check_task(t));
    MEGALITH_RETURN_IF_ERROR(check_events());
    MEGALITH_RETURN_IF_ERROR(check_queues());
    MEGALITH_RETURN_IF_ERROR(check_step_chain());
    MEGALITH_ASSIGN_OR_RETURN(claimed_, claimed_ops(tg_));
    return check_hazards();
  }

 private:
  std::string describe(uint32_t t) const {
    const TaskDesc& d = tg_.tasks[t];
    const std::string op = d.op < tg_.ops.size() ? tg_.ops[d.op].name : "?";
    return fmt::format("task {} ({} of '{}')", t, task_kind_name(d.kind), op);
  }
  std::span<const EventWait> waits(uint32_t t) const {
    const TaskDesc& d = tg_.tasks[t];
    return {tg_.waits.data() + d.wait_begin, d.wait_count};
  }

  Status check_sizes() const {
    if (tg_.num_workers < 1) return invalid_argument("task graph: no workers");
    if (tg_.tasks.empty()) return invalid_argument("task graph: no tasks");
    if (tg_.queue_begin.size() != size_t(tg_.num_workers) + 1 ||
        tg_.queue_tasks.size() != tg_.tasks.size() || tg_.task_cost_us.size() != tg_.tasks.size()) {
      return invalid_argument("task graph: queues or costs do not match {} tasks on {} workers",
                              tg_.tasks.size(), tg_.num_workers);
    }
    if (tg_.source_task >= tg_.tasks.size() || tg_.sink_task >= tg_.tasks.size()) {
      return invalid_argument("task graph: source or sink task out of range");
    }
    return {};
  }

  Status check_task(uint32_t t) {
    const TaskDesc& d = tg_.tasks[t];
    if (uint16_t(d.kind) >= abi::kNumTaskKinds) {
      return invalid_argument("task graph: task {} has unknown kind {}", t, uint16_t(d.kind));
    }
    if (d.op >= tg_.ops.size()) return invalid_argument("{}: op out of range", describe(t));
    const auto names = task_ref_names(d.kind);
    if (d.num_refs != names.size()) {
      return invalid_argument("{}: {} refs, its kind has {}", describe(t), d.num_refs, names.size());
    }
    for (size_t r = 0; r < names.size(); ++r) {
      const abi::TensorRef& ref = d.refs[r];
      if (ref.buffer == abi::kNoBuffer) {
        if (!names[r].ends_with('?')) {
          return invalid_argument("{}: required ref '{}' is absent", describe(t), names[r]);
        }
        continue;
      }
      if (ref.buffer >= tg_.buffers.size()) {
        return invalid_argument("{}: ref '{}' names buffer {} of {}", describe(t), names[r],
                                ref.buffer, tg_.buffers.size());
      }
      const BufferDesc& b = tg_.buffers[ref.buffer];
      const uint64_t esize = ref_elem_size(ref.type);
      if (ref.rows < 1 || ref.cols < 1 || ref.row_stride < ref.cols || uint8_t(ref.type) > 3 ||
          ref.offset % esize != 0 ||
          ref.offset + (uint64_t(ref.rows - 1) * uint64_t(ref.row_stride) + uint64_t(ref.cols)) * esize >
              b.bytes) {
        return invalid_argument("{}: ref '{}' ({} x {}, stride {}, offset {}) does not fit buffer "
                                "'{}' of {} bytes", describe(t), names[r], ref.rows, ref.cols,
                                ref.row_stride, ref.offset, b.name, b.bytes);
      }
      if (ref.access != abi::RefAccess::kRead &&
          (b.kind == BufferKind::kWeight || b.kind == BufferKind::kConstant)) {
        return invalid_argument("{}: writes read-only buffer '{}'", describe(t), b.name);
      }
    }
    if (d.worker >= uint32_t(tg_.num_workers)) {
      return invalid_argument("{}: worker {} out of range", describe(t), d.worker);
    }
    if (uint64_t(d.wait_begin) + d.wait_count > tg_.waits.size()) {
      return invalid_argument("{}: waits out of range", describe(t));
    }
    for (const EventWait& w : waits(t)) {
      if (w.event >= tg_.events.size() || w.step_offset > 1) {
        return invalid_argument("{}: waits on event {} at step offset {}", describe(t), w.event,
                                w.step_offset);
      }
    }
    if (d.signal == abi::kNoEvent && d.second_signal != abi::kNoEvent) {
      return invalid_argument("{}: a second signal without a first", describe(t));
    }
    if (d.second_signal != abi::kNoEvent && d.second_signal == d.signal) {
      return invalid_argument("{}: signals event {} twice", describe(t), d.signal);
    }
    for (const uint32_t e : {d.signal, d.second_signal}) {
      if (e == abi::kNoEvent) continue;
      if (e >= tg_.events.size()) return invalid_argument("{}: signals no event", describe(t));
      producers_[e].push_back(t);
    }
    return {};
  }

  Status check_events() const {
    std::vector<std::vector<abi::EventConsumer>> waiting(tg_.events.size());
    for (uint32_t t = 0; t < tg_.tasks.size(); ++t) {
      for (const EventWait& w : waits(t)) {
        waiting[w.event].push_back({t, w.step_offset});
        if (w.step_offset == 0) {
          for (uint32_t p : producers_[w.event]) {
            if (p >= t) {
              return invalid_argument("task graph: {} waits on {}, which comes later: tasks are "
                                      "not in topological order", describe(t), describe(p));
            }
          }
        } else if (t != tg_.source_task || producers_[w.event] != std::vector{tg_.sink_task}) {
          return invalid_argument("task graph: {} waits on the previous step; only the source "
                                  "may, and only on the sink", describe(t));
        }
      }
    }
    for (uint32_t e = 0; e < tg_.events.size(); ++e) {
      const abi::EventDesc& ev = tg_.events[e];
      if (ev.triggers != producers_[e].size() || ev.triggers == 0) {
        return invalid_argument("task graph: event {} expects {} triggers, {} tasks signal it", e,
                                ev.triggers, producers_[e].size());
      }
      if (uint64_t(ev.consumer_begin) + ev.consumer_count > tg_.consumers.size()) {
        return invalid_argument("task graph: event {} consumers out of range", e);
      }
      std::vector<std::pair<uint32_t, uint32_t>> listed, actual;
      for (uint32_t i = 0; i < ev.consumer_count; ++i) {
        const abi::EventConsumer& c = tg_.consumers[ev.consumer_begin + i];
        listed.emplace_back(c.task, c.step_offset);
      }
      for (const auto& c : waiting[e]) actual.emplace_back(c.task, c.step_offset);
      std::sort(listed.begin(), listed.end());
      std::sort(actual.begin(), actual.end());
      if (listed != actual) {
        return invalid_argument("task graph: event {} lists {} consumers, {} tasks wait on it", e,
                                listed.size(), actual.size());
      }
    }
    return {};
  }

  Status check_queues() const {
    std::vector<char> seen(tg_.tasks.size(), 0);
    for (int32_t w = 0; w < tg_.num_workers; ++w) {
      if (tg_.queue_begin[size_t(w)] > tg_.queue_begin[size_t(w) + 1] ||
          tg_.queue_begin[size_t(w) + 1] > tg_.queue_tasks.size()) {
        return invalid_argument("task graph: queue {} out of range", w);
      }
      uint32_t previous = 0;
      bool first = true;
      for (uint32_t t : tg_.queue(w)) {
        if (t >= tg_.tasks.size() || seen[t] || tg_.tasks[t].worker != uint32_t(w)) {
          return invalid_argument("task graph: queue {} holds task {} twice or of another worker",
                                  w, t);
        }
        if (!first && t <= previous) {
          return invalid_argument("task graph: queue {} runs task {} after task {}: static mode "
                                  "could deadlock", w, t, previous);
        }
        seen[t] = 1;
        previous = t;
        first = false;
      }
    }
    if (std::count(seen.begin(), seen.end(), 1) != std::ptrdiff_t(tg_.tasks.size())) {
      return invalid_argument("task graph: some tasks are in no queue");
    }
    return {};
  }

  // Every task descends from the source and is an ancestor of the sink (same-step edges).
  Status check_step_chain() const {
    std::vector<std::vector<uint32_t>> succ(tg_.tasks.size());
    for (uint32_t t = 0; t < tg_.tasks.size(); ++t) {
      for (const EventWait& w : waits(t)) {
        if (w.step_offset != 0) continue;
        for (uint32_t p : producers_[w.event]) succ[p].push_back(t);
      }
    }
    std::vector<char> from_source(tg_.tasks.size(), 0), to_sink(tg_.tasks.size(), 0);
    from_source[tg_.source_task] = 1;
    for (uint32_t t = 0; t < tg_.tasks.size(); ++t) {
      if (!from_source[t]) continue;
      for (uint32_t s : succ[t]) from_source[s] = 1;
    }
    to_sink[tg_.sink_task] = 1;
    for (uint32_t t = uint32_t(tg_.tasks.size()); t-- > 0;) {
      for (uint32_t s : succ[t]) to_sink[t] |= to_sink[s];
    }
    for (uint32_t t = 0; t < tg_.tasks.size(); ++t) {
      if (!from_source[t]) {
        return invalid_argument("task graph: {} does not wait (even indirectly) for the step's "
                                "source", describe(t));
      }
      if (!to_sink[t]) {
        return invalid_argument("task graph: the step's sink does not wait (even indirectly) for "
                                "{}, so the next step could overtake it", describe(t));
      }
    }
    const auto source_waits = waits(tg_.source_task);
    if (source_waits.size() != 1 || source_waits[0].step_offset != 1) {
      return invalid_argument("task graph: the source must wait on exactly the previous step's sink");
    }
    return {};
  }

  // Which of `targets` (sorted) are ancestors of task `t`.
  void find_ancestors(uint32_t t, const std::vector<uint32_t>& targets, std::vector<char>& found) {
    found.assign(targets.size(), 0);
    if (++stamp_ == 0) {
      std::fill(task_mark_.begin(), task_mark_.end(), 0);
      std::fill(event_mark_.begin(), event_mark_.end(), 0);
      stamp_ = 1;
    }
    const uint32_t lowest = targets.front();
    size_t remaining = targets.size();
    stack_.assign(1, t);
    while (!stack_.empty() && remaining > 0) {
      const uint32_t u = stack_.back();
      stack_.pop_back();
      for (const EventWait& w : waits(u)) {
        if (w.step_offset != 0 || event_mark_[w.event] == stamp_) continue;
        event_mark_[w.event] = stamp_;
        const std::vector<uint32_t>& producers = producers_[w.event];  // ascending
        for (auto pi = producers.rbegin(); pi != producers.rend() && *pi >= lowest; ++pi) {
          const uint32_t p = *pi;
          if (task_mark_[p] == stamp_) continue;
          task_mark_[p] = stamp_;
          const auto it = std::lower_bound(targets.begin(), targets.end(), p);
          if (it != targets.end() && *it == p) {
            found[size_t(it - targets.begin())] = 1;
            --remaining;
          }
          stack_.push_back(p);
        }
      }
    }
  }

  // The windows of a ref. The scratch and host buffers hold many small tensors: their
  // windows are cut into rows and kChunk-byte pieces, each piece its own space, so the
  // hazard tracker compares only accesses to nearby bytes.
  static constexpr int64_t kChunk = 1024;
  void add_windows(const abi::TensorRef& ref, BufferKind kind,
                   std::vector<HazardTracker::Access>& out) const {
    const bool read = ref.access != abi::RefAccess::kWrite;
    const bool write = ref.access != abi::RefAccess::kRead;
    const int64_t esize = int64_t(ref_elem_size(ref.type));
    const int64_t stride = ref.row_stride * esize;
    const int64_t offset = int64_t(ref.offset);
    const int64_t space = int64_t(ref.buffer) << 32;
    if (kind != BufferKind::kActivation && kind != BufferKind::kIo) {
      out.push_back({{space, stride, offset / stride, ref.rows, offset % stride, ref.cols * esize},
                     read, write});
      return;
    }
    for (int64_t r = 0; r < ref.rows; ++r) {
      const int64_t begin = offset + r * stride, end = begin + ref.cols * esize;
      for (int64_t chunk = begin / kChunk; chunk * kChunk < end; ++chunk) {
        const int64_t lo = std::max(begin, chunk * kChunk), hi = std::min(end, (chunk + 1) * kChunk);
        out.push_back({{space + chunk, kChunk, 0, 1, lo - chunk * kChunk, hi - lo}, read, write});
      }
    }
  }

  Status check_hazards() {
    task_mark_.assign(tg_.tasks.size(), 0);
    event_mark_.assign(tg_.events.size(), 0);
    HazardTracker tracker;
    std::vector<HazardTracker::Access> accesses;
    std::vector<std::pair<uint32_t, Hazard>> conflicts;
    std::vector<uint32_t> targets;
    std::vector<char> found;
    // A task of a claimed op may write the outputs of every tile of its op, and none of the
    // op's tasks writes a row another one does (the claims deal each row out once).
    std::vector<const ClaimedOp*> claimed_by_task(tg_.tasks.size(), nullptr);
    std::vector<std::vector<uint32_t>> groups(claimed_.size());
    for (size_t c = 0; c < claimed_.size(); ++c) {
      for (uint32_t i = 0; i < claimed_[c].task_count; ++i) {
        claimed_by_task[claimed_[c].task_begin + i] = &claimed_[c];
        groups[c].push_back(claimed_[c].task_begin + i);
      }
    }
    static const std::vector<uint32_t> kAlone;
    for (uint32_t t = 0; t < tg_.tasks.size(); ++t) {
      const TaskDesc& d = tg_.tasks[t];
      const ClaimedOp* claimed = claimed_by_task[t];
      accesses.clear();
      for (uint16_t r = 0; r < d.num_refs; ++r) {
        const abi::TensorRef& ref = d.refs[r];
        if (ref.buffer == abi::kNoBuffer) continue;
        const BufferKind kind = tg_.buffers[ref.buffer].kind;
        if (kind == BufferKind::kWeight || kind == BufferKind::kConstant) continue;
        if (claimed && r == claimed_out_ref(d.kind)) continue;
        add_windows(ref, kind, accesses);
      }
      if (claimed) {
        for (const ClaimedPart& part : claimed->parts) {
          add_windows(part.out, tg_.buffers[part.out.buffer].kind, accesses);
        }
      }
      conflicts.clear();
      tracker.add_task(
          t, accesses,
          [&](uint32_t earlier, Hazard h) {
            // Everything descends from the source (checked above).
            if (earlier != tg_.source_task) conflicts.emplace_back(earlier, h);
          },
          claimed ? groups[size_t(claimed - claimed_.data())] : kAlone);
      if (conflicts.empty()) continue;
      targets.clear();
      for (const auto& c : conflicts) targets.push_back(c.first);
      std::sort(targets.begin(), targets.end());
      targets.erase(std::unique(targets.begin(), targets.end()), targets.end());
      find_ancestors(t, targets, found);
      for (const auto& [earlier, hazard] : conflicts) {
        const size_t i = size_t(std::lower_bound(targets.begin(), targets.end(), earlier) - targets.begin());
        if (found[i]) continue;
        const char* what = hazard == Hazard::kReadAfterWrite   ? "reads what"
                           : hazard == Hazard::kWriteAfterRead ? "overwrites what"
                                                               : "writes over what";
        const char* verb = hazard == Hazard::kWriteAfterRead ? "reads" : "writes";
        return invalid_argument("task graph: {} {} {} {}, but nothing orders them", describe(t),
                                what, describe(earlier), verb);
      }
    }
    return {};
  }

  const TaskGraph& tg_;
  std::vector<ClaimedOp> claimed_;
  std::vector<std::vector<uint32_t>> producers_;
  std::vector<uint32_t> task_mark_, event_mark_, stack_;
  uint32_t stamp_ = 0;
};

}  // namespace

Status verify_task_graph(const TaskGraph& tg) { return Verifier(tg).run(); }

}  // namespace megalith
