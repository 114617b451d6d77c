#!/usr/bin/env python3
"""Compares the bf16 decode kernel's matvec item loop (its densest run of FFMAs) between cubins.

A change to one task kind moves the static loop's register allocation and with it the linears'
streams (docs/performance.md, twentieth session), so before spending device time on a branch,
check whether its item loop is still main's, instruction for instruction:

    nvcc -Ikernels -Iinclude -O3 -DNDEBUG -arch=sm_90a -std=c++17 -x cu -cubin \\
        kernels/megakernel/megakernel.cu -o /tmp/main.cubin        # on each checkout
    scripts/dev/item_loop_sass.py /tmp/main.cubin /tmp/branch.cubin

Prints per cubin the kernel's instruction count and the loop region's hashes (addresses
stripped; "shape" also with registers and predicates renamed), then the changed lines against
the first. Needs cuobjdump and nvdisasm on PATH (pip packages nvidia-cuda-cuobjdump and
nvidia-cuda-nvdisasm have them).
"""
import difflib
import hashlib
import re
import subprocess
import sys

KERNEL = "megakernel_bf16_decode"
WINDOW = 200  # instructions: the item loop unrolled is about 450


def kernel_sass(cubin):
    out = subprocess.run(["cuobjdump", "-sass", cubin], capture_output=True, text=True, check=True)
    name, body = None, {}
    for line in out.stdout.splitlines():
        m = re.search(r"Function : (\S+)", line)
        if m:
            name = m.group(1)
            body[name] = []
            continue
        m = re.match(r"\s+/\*([0-9a-f]{4,})\*/\s+(.*?);", line)
        if m and name:
            body[name].append(m.group(2).strip())
    names = [n for n in body if KERNEL in n]
    if not names:
        sys.exit(f"{cubin}: no {KERNEL}")
    return body[names[0]]


def item_loop(ins):
    """The densest FFMA window, widened while FFMAs follow within 40 instructions."""
    best, at = -1, 0
    for i in range(max(1, len(ins) - WINDOW)):
        count = sum("FFMA" in x for x in ins[i : i + WINDOW])
        if count > best:
            best, at = count, i
    lo, hi = at, at + WINDOW
    while lo > 0 and any("FFMA" in x for x in ins[max(0, lo - 40) : lo]):
        lo -= 1
    while hi < len(ins) and any("FFMA" in x for x in ins[hi : hi + 40]):
        hi += 1
    return ins[lo:hi]


def normalized(region, rename):
    out = [re.sub(r"0x[0-9a-f]+", "ADDR", x) for x in region]
    if rename:
        out = [re.sub(r"\bU?R\d+\b", "R", re.sub(r"\bU?P\d\b", "P", x)) for x in out]
    return out


def digest(lines):
    return hashlib.md5("\n".join(lines).encode()).hexdigest()[:12]


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    first = None
    for cubin in sys.argv[1:]:
        ins = kernel_sass(cubin)
        loop = item_loop(ins)
        exact, shape = normalized(loop, False), normalized(loop, True)
        line = f"{cubin}: {len(ins)} instructions; item loop {len(loop)}, {digest(exact)}, shape {digest(shape)}"
        if first is None:
            first = shape
        else:
            diff = [d for d in difflib.unified_diff(first, shape, lineterm="", n=0)
                    if d[:1] in "+-" and d[:3] not in ("+++", "---")]
            line += f"; {len(diff)} lines changed against the first"
        print(line)


if __name__ == "__main__":
    main()
