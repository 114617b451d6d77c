#!/usr/bin/env python3
"""Counts a megakernel's SASS instructions by the source they were inlined from.

Code that never runs still costs the tasks that do, through the instruction caches
(docs/performance.md, fifteenth and forty-fourth sessions), so what the bf16 decode kernel
holds, and for which task, is worth knowing. Input: `nvdisasm -g -gi` of a cubin compiled with
-lineinfo, plain or gzipped (scripts/gpu/profile_source.sh makes one, lines.sass.gz). Each
instruction counts once, for the task file it was inlined into (the outermost of
kernels/tasks/ and the ring) and for the innermost source line it came from.

  code_size.py lines.sass.gz [--kernel megakernel_bf16_decode] [--top 20]
"""
import argparse
import collections

from stall_lines import read_chains

# The files that hold a task kind's body or the weight ring: an instruction belongs to the
# outermost of them in its chain.
TASK_FILES = ("linear.cuh", "attention_partial.cuh", "attention_merge.cuh", "sample.cuh",
              "embedding.cuh", "weight_ring.cuh", "dispatch.cuh")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("lines_sass")
    ap.add_argument("--kernel", default="megakernel_bf16_decode")
    ap.add_argument("--top", type=int, default=20)
    args = ap.parse_args()
    chains = read_chains(args.lines_sass, args.kernel)
    if not chains:
        raise SystemExit(f"no instructions of a kernel matching '{args.kernel}'")
    by_task = collections.Counter()
    by_line = collections.Counter()
    for chain, _ in chains.values():
        files = [f for f, _ in chain]
        if files and files[0].startswith("__"):  # stall_lines.SUBROUTINE: the compiler's own
            task = "the compiler's subroutines"
        else:
            task = next((f for f in reversed(files) if f in TASK_FILES), "the worker loop")
        by_task[task] += 1
        by_line[chain[0] if chain else ("no source line", 0)] += 1
    print(f"{len(chains)} instructions ({16 * len(chains) / 1024:.0f} KB) in {args.kernel}")
    for task, n in by_task.most_common():
        print(f"  {n:7d}  {task}")
    print(f"innermost source lines, the {args.top} largest:")
    for (name, line), n in by_line.most_common(args.top):
        print(f"  {n:7d}  {name}:{line}")


if __name__ == "__main__":
    main()
