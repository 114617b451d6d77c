#!/usr/bin/env python3
"""How a linear op's tiles differ in stream time, and whether the differences repeat. First, per
kind, what the ops' spread costs the middle step: the sum over its ops of the last tile's end
after the mean tile's end (the next op waits for the last; with the tiles balanced it would wait
for the mean). Then, per task, its stream time over its op's mean in the same step (slowness;
the op's largest tiles only), and the share of the slowness' variance that the task itself
explains across the traced steps (the same tile on the same worker: persistent), its worker
alone, or its SM. With a second trace of another launch (the workers land on other SMs), the
correlation of each tile's mean slowness between the two launches says whether it follows the
tile or the SM.

  python3 scripts/gpu/tile_slowness.py trace.json [other_launch.json] [--kind KIND]

A share near 1/steps is what chance gives a task seen `steps` times.
"""
import argparse
import math
import statistics as st
from collections import defaultdict

from sm_speeds import load_tasks


def slowness(events, kind):
    """(task id, worker, sm, step, stream / its op's mean stream in the step) per task."""
    ops = defaultdict(list)
    for e in events:
        if e["args"]["kind"] == kind and "stream_us" in e["args"]:
            ops[(e["name"], e["args"]["step"])].append(e)
    rows = []
    for tasks in ops.values():
        largest = max(e["args"]["bytes"] for e in tasks)
        tasks = [e for e in tasks if e["args"]["bytes"] == largest]
        mean = st.mean(e["args"]["stream_us"] for e in tasks)
        for e in tasks:
            a = e["args"]
            rows.append((a["task"], e["tid"], a["sm"], a["step"], a["stream_us"] / mean))
    return rows


def end_spread_us(events, kind):
    """The middle traced step's sum over the ops of `kind` of (last end - mean end), us."""
    steps = sorted({e["args"]["step"] for e in events})
    step = steps[len(steps) // 2]
    ends = defaultdict(list)
    for e in events:
        if e["args"]["kind"] == kind and e["args"]["step"] == step:
            ends[e["name"]].append(e["ts"] + e["dur"])
    return step, sum(max(v) - st.mean(v) for v in ends.values())


def grouped(rows, key):
    groups = defaultdict(list)
    for r in rows:
        groups[key(r)].append(r[4])
    return groups


def explained(rows, key):
    """The share of the slowness' variance between the groups of `key`."""
    total = st.pvariance([r[4] for r in rows])
    groups = grouped(rows, key)
    within = sum(st.pvariance(v) * len(v) for v in groups.values()) / len(rows)
    return 1 - within / total if total > 0 else 0.0


def correlation(a, b):
    ma, mb = st.mean(a), st.mean(b)
    num = sum((x - ma) * (y - mb) for x, y in zip(a, b))
    den = math.sqrt(sum((x - ma) ** 2 for x in a) * sum((y - mb) ** 2 for y in b))
    return num / den if den > 0 else 0.0


def launch_correlation(rows, rows2, key):
    """The correlation between two launches of the mean slowness of each group of `key`."""
    a = {k: st.mean(v) for k, v in grouped(rows, key).items()}
    b = {k: st.mean(v) for k, v in grouped(rows2, key).items()}
    common = sorted(set(a) & set(b))
    return correlation([a[k] for k in common], [b[k] for k in common])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trace")
    parser.add_argument("other", nargs="?", help="a trace of another launch of the same model")
    parser.add_argument("--kind", action="append",
                        help="task kinds (default: the three linear kinds of the layers)")
    args = parser.parse_args()
    kinds = args.kind or ["rms_norm_linear", "linear_residual", "rms_norm_gate_up_silu"]
    first = load_tasks(args.trace)
    other = load_tasks(args.other) if args.other else None
    for kind in kinds:
        rows = slowness(first, kind)
        if not rows:
            print(f"{kind}: no traced tasks")
            continue
        steps = len({r[3] for r in rows})
        step, spread = end_spread_us(first, kind)
        print(f"{kind}: step {step}'s last ends after the mean ends by {spread:.0f} us in all")
        task, worker, sm = (explained(rows, lambda r, i=i: r[i]) for i in (0, 1, 2))
        print(f"  {len(rows)} tasks over {steps} steps, slowness sd "
              f"{st.pstdev([r[4] for r in rows]):.3f}; variance explained by the task {task:.2f}, "
              f"its worker {worker:.2f}, its SM {sm:.2f}")
        if other is None:
            continue
        rows2 = slowness(other, kind)
        print(f"  against the other launch: a tile's mean slowness correlates "
              f"{launch_correlation(rows, rows2, lambda r: r[0]):.2f}, an SM's "
              f"{launch_correlation(rows, rows2, lambda r: r[2]):.2f}")


if __name__ == "__main__":
    main()
