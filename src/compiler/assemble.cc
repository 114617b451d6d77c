#include <algorithm>
#include <iterator>
#include <map>
#include <optional>
#include <set>

#include "passes.h"

namespace megalith::compiler {

namespace {

using ConsumerSet = std::vector<std::pair<uint32_t, uint32_t>>;  // (task, step offset), sorted

// `set` as two disjoint sets of `others` (the consumer sets of its op's other producers), if it
// is their union: a tile straddling two attention groups, say, read by both groups' tasks,
// beside tiles read by one group each. Such a producer signals the two sets' events instead of
// an event of its own, so each consumer waits on one event of the op, not also on one per
// straddling tile (acquired one after another: 1.2-1.8 us from Llama-3.2-1B's last q/k/v tile
// to attention, docs/performance.md), and still on exactly the tasks whose output it reads.
std::optional<std::pair<ConsumerSet, ConsumerSet>> split_in_two(const ConsumerSet& set,
                                                                const std::set<ConsumerSet>& others) {
  if (set.size() < 2) return std::nullopt;
  for (const ConsumerSet& part : others) {
    if (part.size() >= set.size() || !std::includes(set.begin(), set.end(), part.begin(), part.end())) {
      continue;
    }
    ConsumerSet rest;
    std::set_difference(set.begin(), set.end(), part.begin(), part.end(), std::back_inserter(rest));
    if (others.count(rest) != 0) return std::make_pair(part, rest);
  }
  return std::nullopt;
}

abi::RefType ref_type(ElemType t) { return abi::RefType(uint8_t(t)); }

// Buffers of every value: one per weight, constant, state and host buffer; one arena for
// all activations. Returns each value's (buffer, byte offset).
std::vector<std::pair<uint32_t, int64_t>> make_buffers(const Program& p, const BufferPlan& plan,
                                                       TaskGraph& tg) {
  std::vector<std::pair<uint32_t, int64_t>> home(p.values.size());
  uint32_t arena = abi::kNoBuffer;
  for (size_t v = 0; v < p.values.size(); ++v) {
    const Value& value = p.values[v];
    if (value.kind == BufferKind::kActivation) {
      if (plan.offset[v] < 0) continue;  // never accessed
      if (arena == abi::kNoBuffer) {
        arena = uint32_t(tg.buffers.size());
        tg.buffers.push_back({"activations", BufferKind::kActivation, ElemType::kF32,
                              uint64_t(plan.arena_bytes), {}});
      }
      home[v] = {arena, plan.offset[v]};
      continue;
    }
    home[v] = {uint32_t(tg.buffers.size()), 0};
    tg.buffers.push_back({value.name, value.kind, value.type, uint64_t(value.bytes()), value.data});
  }
  return home;
}

}  // namespace

TaskGraph assemble(const Program& p, const std::vector<uint32_t>& worker, const BufferPlan& plan,
                   int32_t num_workers) {
  TaskGraph tg;
  tg.num_workers = num_workers;
  tg.batch = p.batch;
  tg.max_seq_len = p.max_seq_len;
  tg.vocab_size = p.vocab;
  tg.ops = p.ops;
  tg.source_task = p.source;
  tg.sink_task = p.sink;
  const auto home = make_buffers(p, plan, tg);

  // Consumers of each task: who waits on it, and at which step offset.
  std::vector<std::vector<abi::EventConsumer>> consumers(p.tasks.size());
  for (uint32_t t = 0; t < p.tasks.size(); ++t) {
    for (uint32_t d : p.tasks[t].deps) consumers[d].push_back({t, 0});
  }
  consumers[p.sink].push_back({p.source, 1});  // the sampled token feeds the next step

  // Events: one per distinct consumer set, producers with the same consumers sharing it.
  std::vector<ConsumerSet> sets(p.tasks.size());
  std::map<uint32_t, std::set<ConsumerSet>> op_sets;  // each op's producers' distinct sets
  for (uint32_t t = 0; t < p.tasks.size(); ++t) {
    for (const auto& c : consumers[t]) sets[t].emplace_back(c.task, c.step_offset);
    std::sort(sets[t].begin(), sets[t].end());
    if (!sets[t].empty()) op_sets[p.tasks[t].op].insert(sets[t]);
  }
  std::map<ConsumerSet, uint32_t> event_of;
  std::vector<ConsumerSet> event_sets;
  const auto event_for = [&](const ConsumerSet& set) {
    auto [it, fresh] = event_of.emplace(set, uint32_t(tg.events.size()));
    if (fresh) {
      abi::EventDesc e;
      e.consumer_begin = uint32_t(tg.consumers.size());
      e.consumer_count = uint32_t(set.size());
      for (const auto& [task, offset] : set) tg.consumers.push_back({task, offset});
      tg.events.push_back(e);
      event_sets.push_back(set);
    }
    ++tg.events[it->second].triggers;
    return it->second;
  };
  std::vector<uint32_t> signal(p.tasks.size(), abi::kNoEvent);
  std::vector<uint32_t> second_signal(p.tasks.size(), abi::kNoEvent);
  for (uint32_t t = 0; t < p.tasks.size(); ++t) {
    if (sets[t].empty()) continue;
    const auto split = split_in_two(sets[t], op_sets[p.tasks[t].op]);
    if (split) {
      signal[t] = event_for(split->first);
      second_signal[t] = event_for(split->second);
    } else {
      signal[t] = event_for(sets[t]);
    }
  }
  // Whether task t (this step) is among event e's consumers.
  const auto consumes = [&](uint32_t e, uint32_t t) {
    return std::binary_search(event_sets[e].begin(), event_sets[e].end(), std::make_pair(t, 0u));
  };

  tg.tasks.resize(p.tasks.size());
  tg.task_cost_us.resize(p.tasks.size());
  for (uint32_t t = 0; t < p.tasks.size(); ++t) {
    const Task& task = p.tasks[t];
    abi::TaskDesc& d = tg.tasks[t];
    d.kind = task.kind;
    d.op = task.op;
    d.worker = worker[t];
    d.params = task.params;
    d.signal = signal[t];
    d.second_signal = second_signal[t];
    d.num_refs = uint16_t(task.refs.size());
    for (size_t r = 0; r < task.refs.size(); ++r) {
      const Access& a = task.refs[r];
      if (a.value == kNoValue) continue;
      const Value& v = p.values[size_t(a.value)];
      const auto [buffer, base] = home[size_t(a.value)];
      abi::TensorRef& ref = d.refs[r];
      ref.buffer = buffer;
      ref.type = ref_type(v.type);
      ref.access = a.access;
      ref.offset = uint64_t(base + (a.row0 * v.cols + a.col0) * int64_t(elem_size(v.type)));
      ref.rows = int32_t(a.rows);
      ref.cols = int32_t(a.cols);
      ref.row_stride = v.cols;
    }
    d.wait_begin = uint32_t(tg.waits.size());
    if (t == p.source) tg.waits.push_back({signal[p.sink], 1});
    for (uint32_t dep : task.deps) {
      for (const uint32_t e : {signal[dep], second_signal[dep]}) {
        if (e == abi::kNoEvent || !consumes(e, t)) continue;
        bool seen = false;
        for (uint32_t w = d.wait_begin; w < tg.waits.size(); ++w) seen |= tg.waits[w].event == e;
        if (!seen) tg.waits.push_back({e, 0});
      }
    }
    d.wait_count = uint32_t(tg.waits.size()) - d.wait_begin;
    tg.task_cost_us[t] = float(task.cost_us);
  }

  tg.queue_begin.assign(size_t(num_workers) + 1, 0);
  for (uint32_t t = 0; t < p.tasks.size(); ++t) ++tg.queue_begin[worker[t] + 1];
  for (size_t w = 0; w < size_t(num_workers); ++w) tg.queue_begin[w + 1] += tg.queue_begin[w];
  tg.queue_tasks.resize(p.tasks.size());
  std::vector<uint32_t> next(tg.queue_begin.begin(), tg.queue_begin.end() - 1);
  for (uint32_t t = 0; t < p.tasks.size(); ++t) tg.queue_tasks[next[worker[t]]++] = t;
  return tg;
}

}  // namespace megalith::compiler
