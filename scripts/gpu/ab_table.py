#!/usr/bin/env python3
"""The headlines of an ab_bench.sh run (its standard output, as ab_carries.sh prints it) as a
markdown table: us/step of each variant on each model, one column per model with the rounds
side by side, and each variant's mean change against the first (main's build).

    scripts/gpu/ab_carries.sh 2 amma prep | tee ab.txt
    scripts/gpu/ab_table.py ab.txt

With --best DIR, prints instead the name of the variant that wins by the rule the A/Bs land
by (its mean change below -0.3%, no model above +0.3%, and ab_carries.sh's DIR/tests_NAME.log
saying every GPU test passed), the one with the lowest mean change; nothing when none does.

    scripts/gpu/ab_table.py ab.txt --best "$OUT"
"""
import collections
import os
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
    settings = " ".join(re.findall(r"\b[A-Z_][A-Z0-9_]*=\S+", variant))
    m = re.search(r"carry-([^/\s]+)/\S*megalith_gpu_bench(.*)", variant)
    if not m:
        return variant
    flags = m.group(2).strip()
    return " ".join(x for x in (m.group(1), settings, flags) if x)


def mean_changes(table):
    """{variant: [change against the first variant in percent, per model]}."""
    base = next(iter(table.values()))
    out = collections.OrderedDict()
    for variant, runs in table.items():
        out[variant] = [100 * (sum(r) / len(r) / (sum(base[m]) / len(base[m])) - 1)
                        for m, r in runs.items() if r and base.get(m)]
    return out


def tests_passed(directory, name):
    """Whether ab_carries.sh's log of NAME's GPU tests ends in a pass."""
    try:
        with open(os.path.join(directory, f"tests_{name}.log")) as log:
            return re.search(r"^\[  PASSED  \] \d+ tests?\.$", log.read(), re.M) is not None
    except OSError:
        return False


def best(table, directory):
    """The winning variant's name by the rule in the module's doc, or None."""
    models = len(next(iter(table.values())))
    winner, lowest = None, -0.3
    for variant, changes in list(mean_changes(table).items())[1:]:
        name = short(variant)  # a variant with flags or settings has no carry of its own
        mean = sum(changes) / len(changes) if changes else 0
        if (len(changes) == models and max(changes) <= 0.3 and mean < lowest and
                " " not in name and tests_passed(directory, name)):
            winner, lowest = name, mean
    return winner


def main():
    args = sys.argv[1:]
    if len(args) not in (1, 3) or (len(args) == 3 and args[1] != "--best"):
        sys.exit(__doc__)
    table = parse(open(args[0]).read())
    if not table:
        sys.exit("no ab_bench headlines found")
    if len(args) == 3:
        print(best(table, args[2]) or "")
        return
    models = list(next(iter(table.values())).keys())
    print("| variant | " + " | ".join(m.split(":")[1] for m in models) + " | change |")
    print("|---|" + "---|" * len(models) + "---|")
    changes = mean_changes(table)
    for variant, runs in table.items():
        cells = [" / ".join(f"{x:.0f}" for x in runs.get(m, [])) or "-" for m in models]
        print(f"| {short(variant)} | " + " | ".join(cells) + " | " +
              ", ".join(f"{c:+.1f}%" for c in changes[variant]) + " |")


if __name__ == "__main__":
    main()
