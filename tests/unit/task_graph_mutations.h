// Single-edge mutations of a compiled task graph, kept structurally consistent (consumer
// lists and trigger counts follow), for the verifier's and the executor's mutation tests.
#pragma once

#include "megalith/compiler/task_graph.h"

namespace megalith {

// Removes task c's wait on event w (c stops waiting for those producers).
inline TaskGraph without_wait(const TaskGraph& tg, uint32_t c, uint32_t w) {
  TaskGraph m = tg;
  const abi::EventWait removed = m.waits[w];
  m.waits.erase(m.waits.begin() + w);
  for (abi::TaskDesc& t : m.tasks) {
    if (t.wait_begin > w) --t.wait_begin;
  }
  --m.tasks[c].wait_count;
  abi::EventDesc& e = m.events[removed.event];
  for (uint32_t i = e.consumer_begin; i < e.consumer_begin + e.consumer_count; ++i) {
    if (m.consumers[i].task == c && m.consumers[i].step_offset == removed.step_offset) {
      m.consumers[i] = m.consumers[e.consumer_begin + e.consumer_count - 1];
      --e.consumer_count;
      break;
    }
  }
  return m;
}

// Removes task p's signal, or with `second` its second one (its event expects one trigger
// fewer); an event left with no producer disappears, and with it its consumers' waits.
inline TaskGraph without_signal(const TaskGraph& tg, uint32_t p, bool second = false) {
  TaskGraph m = tg;
  abi::TaskDesc& d = m.tasks[p];
  const uint32_t e = second ? d.second_signal : d.signal;
  if (!second) d.signal = d.second_signal;  // a task's only signal is its first
  d.second_signal = abi::kNoEvent;
  if (--m.events[e].triggers > 0) return m;
  for (uint32_t t = 0; t < m.tasks.size(); ++t) {
    for (uint32_t w = m.tasks[t].wait_begin; w < m.tasks[t].wait_begin + m.tasks[t].wait_count; ++w) {
      if (m.waits[w].event == e) {
        m = without_wait(m, t, w);
        break;
      }
    }
  }
  m.events.erase(m.events.begin() + e);
  for (abi::EventWait& w : m.waits) w.event -= w.event > e ? 1 : 0;
  for (abi::TaskDesc& t : m.tasks) {
    t.signal -= t.signal != abi::kNoEvent && t.signal > e ? 1 : 0;
    t.second_signal -= t.second_signal != abi::kNoEvent && t.second_signal > e ? 1 : 0;
  }
  return m;
}

}  // namespace megalith
