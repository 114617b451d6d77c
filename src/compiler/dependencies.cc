#include <algorithm>
#include <map>

#include "megalith/compiler/claimed_rows.h"
#include "passes.h"
#include "regions.h"

namespace megalith::compiler {

namespace {

HazardTracker::Access tracked(const Program& p, const Access& a) {
  const Value& v = p.values[size_t(a.value)];
  return {{a.value, v.cols, a.row0, a.rows, a.col0, a.cols}, a.reads(), a.writes()};
}

void sort_unique(std::vector<uint32_t>& v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
}

}  // namespace

StatusOr<DependencyStats> add_dependencies(Program& p) {
  DependencyStats stats;
  HazardTracker tracker;
  AncestorSearch search(p.tasks.size());
  // Deps are sorted: walk them from the highest down to the search's lower bound.
  auto preds = [&p](uint32_t u, uint32_t lowest, auto&& visit) {
    const std::vector<uint32_t>& deps = p.tasks[u].deps;
    for (auto it = deps.rbegin(); it != deps.rend() && *it >= lowest; ++it) visit(*it);
  };
  std::vector<HazardTracker::Access> accesses;
  std::vector<uint32_t> orderings;
  std::vector<char> found;
  // Tiles of one op usually share both their read dependencies and the orderings they need.
  std::map<std::pair<std::vector<uint32_t>, std::vector<uint32_t>>, std::vector<char>> implied;
  const std::map<uint32_t, ClaimedWrites> claimed = claimed_writes(p);
  static const std::vector<uint32_t> kAlone;
  for (uint32_t t = 0; t < p.tasks.size(); ++t) {
    Task& task = p.tasks[t];
    const auto c = claimed.find(task.op);
    const bool claims = c != claimed.end();
    accesses.clear();
    for (size_t r = 0; r < task.refs.size(); ++r) {
      const Access& a = task.refs[r];
      // Weights and constants are never written: nothing to order.
      if (a.value == kNoValue) continue;
      const BufferKind kind = p.values[size_t(a.value)].kind;
      if (kind == BufferKind::kWeight || kind == BufferKind::kConstant) continue;
      if (claims && int(r) == claimed_out_ref(task.kind)) continue;
      accesses.push_back(tracked(p, a));
    }
    if (claims) {
      for (const Access& a : c->second.writes) accesses.push_back(tracked(p, a));
    }
    orderings.clear();
    tracker.add_task(
        t, accesses,
        [&](uint32_t earlier, Hazard h) {
          (h == Hazard::kReadAfterWrite ? task.deps : orderings).push_back(earlier);
        },
        claims ? c->second.tasks : kAlone);
    sort_unique(task.deps);
    stats.raw_edges += int64_t(task.deps.size());
    sort_unique(orderings);
    // An ordering already implied by the read dependencies needs no edge.
    if (!orderings.empty()) {
      auto key = std::make_pair(task.deps, orderings);
      auto it = implied.find(key);
      if (it == implied.end()) {
        search.find({t}, orderings, found, preds);
        it = implied.emplace(std::move(key), found).first;
      }
      found = it->second;
    }
    for (size_t i = 0; i < orderings.size(); ++i) {
      if (!found[i]) {
        task.deps.push_back(orderings[i]);
        ++stats.ordering_edges;
      }
    }
    sort_unique(task.deps);
    if (t != p.source && task.deps.empty()) {
      return invalid_argument("compiler: task {} of '{}' depends on nothing, so it would not wait "
                              "for its step to begin", t, p.ops[task.op].name);
    }
  }

  // Transitive reduction. Tasks of one op never depend on each other, so only the deps from
  // earlier ops than the latest can be implied by another dep. Every task but the source has
  // a dependency with a lower index, so every task descends from the source (task 0): a
  // dependency on it beside others is always implied.
  std::vector<uint32_t> candidates;
  for (uint32_t t = 0; t < p.tasks.size(); ++t) {
    std::vector<uint32_t>& deps = p.tasks[t].deps;
    uint32_t latest_op = 0;
    for (uint32_t d : deps) latest_op = std::max(latest_op, p.tasks[d].op);
    candidates.clear();
    for (uint32_t d : deps) {
      if (d != p.source && p.tasks[d].op != latest_op) candidates.push_back(d);
    }
    search.find(deps, candidates, found, preds);
    std::vector<uint32_t> kept;
    for (uint32_t d : deps) {
      if (d == p.source && deps.size() > 1) {
        ++stats.reduced_edges;
        continue;
      }
      const auto it = std::lower_bound(candidates.begin(), candidates.end(), d);
      const bool implied = it != candidates.end() && *it == d && found[size_t(it - candidates.begin())];
      if (implied) {
        ++stats.reduced_edges;
      } else {
        kept.push_back(d);
      }
    }
    deps.swap(kept);
  }
  return stats;
}

}  // namespace megalith::compiler
