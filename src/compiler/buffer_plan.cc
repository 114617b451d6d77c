#include <algorithm>
#include <map>

#include "passes.h"
#include "regions.h"

namespace megalith::compiler {

namespace {

constexpr int64_t kAlignment = 256;

int64_t aligned(int64_t bytes) { return (bytes + kAlignment - 1) / kAlignment * kAlignment; }

struct Lifetime {
  std::vector<uint32_t> accessors;  // sorted
  std::vector<uint32_t> writers;    // sorted
};

struct Slot {
  int64_t offset, bytes;
  ValueId occupant;
};

}  // namespace

BufferPlan plan_buffers(const Program& p) {
  BufferPlan plan;
  plan.offset.assign(p.values.size(), -1);
  std::vector<Lifetime> life(p.values.size());
  std::vector<ValueId> order;  // activations by first access
  // A task of a claimed op may write any of the op's outputs.
  const std::map<uint32_t, ClaimedWrites> claimed = claimed_writes(p);
  std::vector<Access> accesses;
  for (uint32_t t = 0; t < p.tasks.size(); ++t) {
    accesses = p.tasks[t].refs;
    if (const auto c = claimed.find(p.tasks[t].op); c != claimed.end()) {
      accesses.insert(accesses.end(), c->second.writes.begin(), c->second.writes.end());
    }
    for (const Access& a : accesses) {
      if (a.value == kNoValue || p.values[size_t(a.value)].kind != BufferKind::kActivation) continue;
      Lifetime& l = life[size_t(a.value)];
      if (l.accessors.empty()) order.push_back(a.value);
      if (l.accessors.empty() || l.accessors.back() != t) l.accessors.push_back(t);
      if (a.writes() && (l.writers.empty() || l.writers.back() != t)) l.writers.push_back(t);
    }
  }

  AncestorSearch search(p.tasks.size());
  // Deps are sorted: walk them from the highest down to the search's lower bound.
  auto preds = [&p](uint32_t u, uint32_t lowest, auto&& visit) {
    const std::vector<uint32_t>& deps = p.tasks[u].deps;
    for (auto it = deps.rbegin(); it != deps.rend() && *it >= lowest; ++it) visit(*it);
  };
  // Whether every access to `old` is ordered before every write of `next`.
  auto ordered_before = [&](ValueId old, ValueId next) {
    const Lifetime& a = life[size_t(old)];
    const Lifetime& b = life[size_t(next)];
    if (b.writers.empty() || a.accessors.back() >= b.writers.front()) return false;
    std::map<std::vector<uint32_t>, bool> by_deps;  // tiles of one op share their deps
    std::vector<char> found;
    for (uint32_t w : b.writers) {
      const std::vector<uint32_t>& deps = p.tasks[w].deps;
      auto it = by_deps.find(deps);
      if (it == by_deps.end()) {
        const bool all = search.find({w}, a.accessors, found, preds) == a.accessors.size();
        it = by_deps.emplace(deps, all).first;
      }
      if (!it->second) return false;
    }
    return true;
  };

  std::vector<Slot> slots;
  for (ValueId v : order) {
    const int64_t bytes = aligned(p.values[size_t(v)].bytes());
    plan.unshared_bytes += bytes;
    // The most recently freed slot first: its ordering is the cheapest to prove.
    std::vector<Slot*> candidates;
    for (Slot& s : slots) {
      if (s.bytes >= bytes) candidates.push_back(&s);
    }
    std::sort(candidates.begin(), candidates.end(), [&](const Slot* a, const Slot* b) {
      return life[size_t(a->occupant)].accessors.back() > life[size_t(b->occupant)].accessors.back();
    });
    Slot* chosen = nullptr;
    for (Slot* s : candidates) {
      if (ordered_before(s->occupant, v)) {
        chosen = s;
        break;
      }
    }
    if (!chosen) {
      slots.push_back({plan.arena_bytes, bytes, v});
      plan.arena_bytes += bytes;
      chosen = &slots.back();
    }
    chosen->occupant = v;
    plan.offset[size_t(v)] = chosen->offset;
  }
  return plan;
}

}  // namespace megalith::compiler
