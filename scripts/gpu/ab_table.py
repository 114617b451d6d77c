#!/usr/bin/env python3
"""The headlines of an ab_bench.sh run (its standard output, as ab_carries.sh prints it) as a
markdown table: us/step of each variant on each model, one column per model with the rounds
side by side, and each variant's mean change against the first (main's build).

    scripts/gpu/ab_carries.sh 2 amma prep | tee ab.txt
    scripts/gpu/ab_table.py ab.txt
"""
import collections
import re
import sys


def parse(text):
    """{variant: {model: [us per round]}} in the order the variants first appear."""
    table = collections.OrderedDict()
    variant = model = None
    for line in text.splitlines():
        m = re.match(r"== round (\d+), variant (\d+): (.*)", line)
        if m:
            variant, model = m.group(3).strip(), None
            table.setdefault(variant, collections.OrderedDict())
            continue
        # The model's line: its spec alone (ab_carries.sh) or with ab_bench.sh's details.
        m = re.match(r"([a-z0-9]+:[a-z0-9.-]+)( \(|$)", line)
        if m:
            model = m.group(1)
            continue
        m = re.match(r"\s+([0-9.]+) us/step", line)
        if m and variant is not None and model is not None:
            table[variant].setdefault(model, []).append(float(m.group(1)))
    return table


def short(variant):
    """build/carry-NAME/tests/gpu/megalith_gpu_bench [flags] with env settings -> NAME [settings flags]."""
    settings = " ".join(re.findall(r"\b[A-Z_]+=\S+", variant))
    m = re.search(r"carry-([^/\s]+)/\S*megalith_gpu_bench(.*)", variant)
    if not m:
        return variant
    flags = m.group(2).strip()
    return " ".join(x for x in (m.group(1), settings, flags) if x)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    table = parse(open(sys.argv[1]).read())
    if not table:
        sys.exit("no ab_bench headlines found")
    models = list(next(iter(table.values())).keys())
    base = next(iter(table.values()))
    print("| variant | " + " | ".join(m.split(":")[1] for m in models) + " | change |")
    print("|---|" + "---|" * len(models) + "---|")
    for variant, runs in table.items():
        cells, changes = [], []
        for m in models:
            r = runs.get(m, [])
            cells.append(" / ".join(f"{x:.0f}" for x in r) or "-")
            if r and base.get(m):
                changes.append(f"{100 * (sum(r) / len(r) / (sum(base[m]) / len(base[m])) - 1):+.1f}%")
        print(f"| {short(variant)} | " + " | ".join(cells) + " | " + ", ".join(changes) + " |")


if __name__ == "__main__":
    main()
