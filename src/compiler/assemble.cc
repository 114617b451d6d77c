#include <map>

#include "passes.h"

namespace megalith::compiler {

namespace {

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

  // One event per distinct consumer set: producers with the same consumers share it.
  std::map<std::vector<std::pair<uint32_t, uint32_t>>, uint32_t> event_of;
  std::vector<uint32_t> signal(p.tasks.size(), abi::kNoEvent);
  for (uint32_t t = 0; t < p.tasks.size(); ++t) {
    if (consumers[t].empty()) continue;
    std::vector<std::pair<uint32_t, uint32_t>> key;
    for (const auto& c : consumers[t]) key.emplace_back(c.task, c.step_offset);
    auto [it, fresh] = event_of.emplace(std::move(key), uint32_t(tg.events.size()));
    if (fresh) {
      abi::EventDesc e;
      e.consumer_begin = uint32_t(tg.consumers.size());
      e.consumer_count = uint32_t(consumers[t].size());
      tg.consumers.insert(tg.consumers.end(), consumers[t].begin(), consumers[t].end());
      tg.events.push_back(e);
    }
    ++tg.events[it->second].triggers;
    signal[t] = it->second;
  }

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
      bool seen = false;
      for (uint32_t w = d.wait_begin; w < tg.waits.size(); ++w) seen |= tg.waits[w].event == signal[dep];
      if (!seen) tg.waits.push_back({signal[dep], 0});
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
