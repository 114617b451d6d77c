#!/usr/bin/env python3
"""Per-operator timeline of one step of a `megalith trace` JSON: when each operator's tasks
became ready and finished, relative to the step's first task, so the critical path's hops
(next operator's first start after the previous one's last end) and its imbalance (spread of
the ends) can be read off.

  python3 scripts/gpu/phase_timeline.py trace.json [--step N] [--ops REGEX] [--tasks REGEX]

--tasks lists every task of the matching operators (worker, ready, done, what else the worker
ran in the step), the slowest last.
"""
import argparse
import json
import re
from collections import defaultdict


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trace")
    parser.add_argument("--step", type=int, help="default: the middle traced step")
    parser.add_argument("--ops", default=".", help="only operators whose name matches")
    parser.add_argument("--tasks", help="list the tasks of the operators whose name matches")
    args = parser.parse_args()
    tasks = [e for e in json.load(open(args.trace))["traceEvents"]
             if e.get("ph") == "X" and e.get("name") != "wait"]
    steps = sorted({e["args"]["step"] for e in tasks})
    step = args.step if args.step is not None else steps[len(steps) // 2]
    ops = defaultdict(list)
    by_worker = defaultdict(list)
    for e in tasks:
        if e["args"]["step"] == step:
            ops[e["name"]].append((e["ts"], e["ts"] + e["dur"]))
            by_worker[e["tid"]].append(e)
    t0 = min(b for spans in ops.values() for b, _ in spans)
    print(f"step {step}: us from its first task; ready = inputs there, done = signalled")
    print(f"{'operator':48} {'tasks':>5} {'first ready':>11} {'last ready':>10} "
          f"{'first done':>10} {'last done':>9} {'hop':>6}")
    last_done = None
    for name, spans in sorted(ops.items(), key=lambda kv: min(b for b, _ in kv[1])):
        first_ready = min(b for b, _ in spans) - t0
        hop = "" if last_done is None else f"{first_ready - last_done:6.1f}"
        done = max(e for _, e in spans) - t0
        if re.search(args.ops, name):
            print(f"{name[-48:]:48} {len(spans):5} {first_ready:11.1f} "
                  f"{max(b for b, _ in spans) - t0:10.1f} {min(e for _, e in spans) - t0:10.1f} "
                  f"{done:9.1f} {hop:>6}")
        last_done = done
    if args.tasks:
        print(f"\n{'worker':>6} {'ready':>8} {'done':>8} {'run':>6}  operator / the worker's other tasks")
        mine = sorted((e for es in by_worker.values() for e in es if re.search(args.tasks, e["name"])),
                      key=lambda e: e["dur"])
        for e in mine:
            others = len(by_worker[e["tid"]]) - 1
            print(f"{e['tid']:6} {e['ts'] - t0:8.1f} {e['ts'] + e['dur'] - t0:8.1f} {e['dur']:6.1f}  "
                  f"{e['name'][-40:]} / {others} others")


if __name__ == "__main__":
    main()
