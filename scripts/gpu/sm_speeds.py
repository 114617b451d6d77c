#!/usr/bin/env python3
"""Which SMs stream slower: for each linear operator kind of a `megalith trace` JSON (plain or
gzipped), every task's weight-streaming time over the mean of its operator at its step, averaged
per SM (the trace's `sm` argument). The worker a CTA runs changes from launch to launch; the SM
does not, so a pattern that survives two launches belongs to the SMs (docs/performance.md,
"Slow SMs": those that share a GPC with the attention tasks).

  python3 scripts/gpu/sm_speeds.py trace.json[.gz] [more traces ...] [--ops o_proj,gate_proj]

Prints, per operator kind, one column per trace, SMs by id, 16 a line; '-' for an SM that ran
no task of that kind.
"""
import argparse
import gzip
import json
import statistics
from collections import defaultdict

SMS_PER_LINE = 16


def load_tasks(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        events = json.load(f)["traceEvents"]
    return [e for e in events if e.get("ph") == "X" and e.get("name") != "wait"]


def ratios_by_sm(tasks, op_substring):
    """Mean over the traced steps (the first left out: start-up) of each SM's stream time
    over its operator's mean at that step."""
    steps = sorted({e["args"]["step"] for e in tasks})
    groups = defaultdict(list)
    for e in tasks:
        if (op_substring in e["name"] and "stream_us" in e["args"] and "sm" in e["args"]
                and e["args"]["step"] > steps[0]):
            groups[(e["name"], e["args"]["step"])].append(e)
    per_sm = defaultdict(list)
    for group in groups.values():
        mean = statistics.mean(e["args"]["stream_us"] for e in group)
        if mean <= 0:
            continue
        for e in group:
            per_sm[e["args"]["sm"]].append(e["args"]["stream_us"] / mean)
    return {sm: statistics.mean(r) for sm, r in per_sm.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("traces", nargs="+")
    parser.add_argument("--ops", default="attn.{q_proj,o_proj,gate_proj,down_proj",
                        help="comma-separated substrings of operator names")
    args = parser.parse_args()
    traces = [load_tasks(p) for p in args.traces]
    for op in args.ops.split(","):
        columns = [ratios_by_sm(t, op) for t in traces]
        sms = sorted({sm for c in columns for sm in c})
        if not sms:
            print(f"{op}: no traced task with an SM id")
            continue
        print(f"{op}: stream time / the operator's mean, per SM ({len(traces)} trace(s))")
        for base in range(0, sms[-1] + 1, SMS_PER_LINE):
            cells = []
            for sm in range(base, min(base + SMS_PER_LINE, sms[-1] + 1)):
                cells.append(" ".join(f"{c[sm]:4.2f}" if sm in c else "  - " for c in columns))
            print(f"  sm {base:3}-{base + SMS_PER_LINE - 1:3} " + " | ".join(cells))


if __name__ == "__main__":
    main()
