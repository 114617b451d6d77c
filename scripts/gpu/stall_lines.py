#!/usr/bin/env python3
"""Adds up scripts/gpu/profile_source.sh's warp-state samples per source line.

Each SASS instruction of the megakernel carries the chain of source lines it came from
(innermost first: a helper inlined at a task's line, inlined at the dispatch). An instruction's
samples go to the innermost line of that chain in a file matching --file, so a task's lines
collect the cost of the helpers they call.

  stall_lines.py sass.csv.gz lines.sass.gz [--file attention_partial.cuh] [--top 40]
"""
import argparse
import collections
import csv
import gzip
import re

LOCATION = re.compile(r'//## File "([^"]+)", line (\d+)')
INSTRUCTION = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;")
SECTION = re.compile(r"^//-+ \.text\.(\S+)")
# A subroutine the compiler appends to the kernel (double-precision slow paths and the like):
# its instructions carry no line info, and without this they would count for the line before.
SUBROUTINE = re.compile(r"^\$(?:\S*\$)?(__\S+):\s*$")


def read_chains(path, kernel):
    """Offset -> (source chain innermost first, instruction text) for the kernel's section."""
    chains, chain, in_kernel, pending = {}, [], False, False
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        for line in f:
            m = SECTION.match(line)
            if m:
                in_kernel = kernel in m.group(1)
                continue
            if not in_kernel:
                continue
            m = SUBROUTINE.match(line)
            if m:
                chain, pending = [(m.group(1), 0)], False
                continue
            m = LOCATION.search(line)
            if m:
                if not pending:
                    chain = []
                    pending = True
                chain.append((m.group(1).rsplit("/", 1)[-1], int(m.group(2))))
                continue
            m = INSTRUCTION.search(line)
            if m:
                pending = False
                chains[int(m.group(1), 16)] = (tuple(chain), m.group(2))
    return chains


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("sass_csv")
    ap.add_argument("lines_sass")
    ap.add_argument("--file", default="attention_partial.cuh")
    ap.add_argument("--kernel", default="10megakernelENS0_14MegakernelArgs")
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--instructions", action="store_true", help="per instruction, not per line")
    args = ap.parse_args()
    chains = read_chains(args.lines_sass, args.kernel)

    with gzip.open(args.sass_csv, "rt") as f:
        rows = list(csv.reader(f))
    header = rows[1]
    col = {name: i for i, name in enumerate(header)}
    reasons = [h for h in header if h.startswith("stall_") and "Not Issued" not in h]
    base = int(rows[2][col["Address"]], 16)
    per_line = collections.defaultdict(collections.Counter)
    executed = collections.Counter()
    total = 0
    unmatched = 0
    for r in rows[2:]:
        if len(r) < len(header):
            continue
        samples = int(r[col["Warp Stall Sampling (All Samples)"]] or 0)
        total += samples
        offset = int(r[col["Address"]], 16) - base
        chain, text = chains.get(offset, ((), r[col["Source"]].strip()))
        if not chain:
            unmatched += samples
        frames = [fl for fl in chain if args.file in fl[0]]
        if not frames:
            continue
        key = (frames[0][1], f"{offset:06x} {text}") if args.instructions else frames[0][1]
        c = per_line[key]
        c["samples"] += samples
        for reason in reasons:
            c[reason] += int(r[col[reason]] or 0)
        executed[key] += int(r[col["Instructions Executed"]] or 0)

    in_file = sum(c["samples"] for c in per_line.values())
    print(f"samples: {total} in the kernel, {in_file} ({100 * in_file / max(total, 1):.2f}%) "
          f"in {args.file}; {unmatched} on instructions with no source line")
    for key, c in sorted(per_line.items(), key=lambda kv: -kv[1]["samples"])[: args.top]:
        top = ", ".join(f"{reason[6:]} {c[reason]}" for reason in
                        sorted(reasons, key=lambda x: -c[x])[:3] if c[reason])
        label = f"{key[0]:4d} {key[1][:60]}" if args.instructions else f"{key:4d}"
        print(f"{label}  {c['samples']:8d} samples  {executed[key]:10d} executed  ({top})")


if __name__ == "__main__":
    main()
