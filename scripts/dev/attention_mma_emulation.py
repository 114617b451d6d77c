#!/usr/bin/env python3
"""A lane-level, bit-level emulation of the bf16 decode kernel's attention pass on the tensor
cores (attention_mma_heads in kernels/tasks/attention_partial.cuh), in numpy, to check its
fragment layouts and its precision without a GPU. Written from the CUDA, lane by lane: 32-bit
registers, little-endian 16-byte loads of bf16 cache rows, cvt.rn.bf16x2 and prmt on bits,
mma.m16n8k16 fragments as the PTX ISA's tables place them, f32 softmax state. Scratch and the
cache rows outside the slice hold NaN, so a stray read shows.

    scripts/dev/attention_mma_emulation.py sweep      # head_dims 8-128, groups 1-8, 1-260 keys
    scripts/dev/attention_mma_emulation.py precision  # relative error against a float32 pass

Options: --weight-parts 2 (the first version's split of the weights, for comparison);
--truncate (model the tensor cores' sums as aligned to the largest term and truncated, rather
than exactly rounded). Exit status 1 when the sweep finds an error above 1e-4 or the precision
check finds the pass less exact than the float32 one. Needs numpy only; takes a few minutes
(sweep) or seconds (precision).
"""
import argparse
import sys

import numpy as np

f32 = np.float32
CONSUMER_WARPS, R, MAX_PAIRS, MAX_TILES = 7, 4, 4, 8
LANE = np.arange(32)
G, T = LANE // 4, LANE % 4  # a lane's fragment row and column pair


def bf16_bits(x):  # round to nearest even, as cvt.rn.bf16.f32
    b = np.asarray(x, f32).view(np.uint32).astype(np.uint64)
    return (((b + 0x7FFF + ((b >> 16) & 1)) >> 16) & 0xFFFF).astype(np.uint32)


def from_bits(h):
    return (np.asarray(h, np.uint32) << 16).view(f32)


def round_bf16(x):
    return from_bits(bf16_bits(x))


def pack(lower, upper):  # pack_bf16x2: cvt.rn.bf16x2.f32 d, upper, lower
    return (bf16_bits(upper) << 16) | bf16_bits(lower)


def prmt(a, b, selector):
    x = np.asarray(a, np.uint64) | (np.asarray(b, np.uint64) << np.uint64(32))
    out = np.zeros_like(x)
    for i in range(4):
        s = (selector >> (4 * i)) & 0xF
        out |= ((x >> np.uint64(8 * s)) & np.uint64(0xFF)) << np.uint64(8 * i)
    return out.astype(np.uint32)


def low(r):
    return from_bits(r & 0xFFFF)


def high(r):
    return from_bits(r >> 16)


class TensorCore:
    def __init__(self, truncate):
        self.truncate = truncate

    def mma(self, d, a, b0, b1):
        """mma.m16n8k16 bf16 -> f32: d [32 lanes, 4] += A [16x16] B [16x8] from the fragments."""
        A, B = np.zeros((16, 16)), np.zeros((16, 8))
        A[G, 2 * T], A[G, 2 * T + 1] = low(a[:, 0]), high(a[:, 0])
        A[G + 8, 2 * T], A[G + 8, 2 * T + 1] = low(a[:, 1]), high(a[:, 1])
        A[G, 2 * T + 8], A[G, 2 * T + 9] = low(a[:, 2]), high(a[:, 2])
        A[G + 8, 2 * T + 8], A[G + 8, 2 * T + 9] = low(a[:, 3]), high(a[:, 3])
        B[2 * T, G], B[2 * T + 1, G], B[2 * T + 8, G], B[2 * T + 9, G] = low(b0), high(b0), low(b1), high(b1)
        C = np.zeros((16, 8))
        C[G, 2 * T], C[G, 2 * T + 1], C[G + 8, 2 * T], C[G + 8, 2 * T + 1] = d[:, 0], d[:, 1], d[:, 2], d[:, 3]
        if self.truncate:
            terms = np.concatenate([A[:, :, None] * B[None, :, :], C[:, None, :]], 1)  # exact products
            C = self._truncated(self._truncated(terms, axis=1).sum(1))
        else:
            C = C + A @ B
        d[:, 0], d[:, 1] = f32(C[G, 2 * T]), f32(C[G, 2 * T + 1])
        d[:, 2], d[:, 3] = f32(C[G + 8, 2 * T]), f32(C[G + 8, 2 * T + 1])

    @staticmethod
    def _truncated(x, axis=None):
        """x cut toward zero to 24 bits below the largest magnitude (along axis, or each)."""
        top = np.abs(x).max(axis, keepdims=True) if axis is not None else np.abs(x)
        exponent = np.floor(np.log2(np.where(top > 0, top, 1)))
        unit = 2.0 ** (exponent - 23)
        return np.trunc(x / unit) * unit


def emulate(qs, k_rows, v_rows, begin, end, g0, heads, scale, hd, weight_parts, core):
    """The pass's outputs [heads, hd] and log-sum-exps for query heads g0.. of qs [group, hd]
    over cache rows [begin, end) (k_rows, v_rows: [rows, hd] of bf16 bits)."""
    pairs, chunks = (hd + 31) // 32, (hd + 63) // 64
    tiles = 4 * chunks
    q_frags = np.full((2 * MAX_PAIRS, 32, 4), 0xFFC00000, np.uint32)  # NaN scratch
    parts = np.full((CONSUMER_WARPS, R, hd), np.nan, f32)
    max_sum = np.full((CONSUMER_WARPS, R, 2), np.nan, f32)

    def words(rows, r):
        return np.frombuffer(rows[r].tobytes(), np.uint32)

    for j in range(pairs):  # warp j: k-steps 2j, 2j + 1 of the scaled query in three parts
        q = np.zeros((32, 8), f32)
        for lane in range(32):
            if G[lane] % 4 < heads and 32 * j + 8 * T[lane] < hd:
                start = 32 * j + 8 * T[lane]
                q[lane] = f32(qs[g0 + G[lane] % 4, start:start + 8] * f32(scale))
        hi = round_bf16(q)
        rest = f32(q - hi)
        mid = round_bf16(rest)
        upper = np.where((G < 4)[:, None], hi, mid)
        lower = np.where((G < 4)[:, None], f32(rest - mid), f32(0))
        for s in range(2):
            q_frags[2 * j + s] = np.stack([pack(upper[:, 4 * s], upper[:, 4 * s + 1]),
                                           pack(lower[:, 4 * s], lower[:, 4 * s + 1]),
                                           pack(upper[:, 4 * s + 2], upper[:, 4 * s + 3]),
                                           pack(lower[:, 4 * s + 2], lower[:, 4 * s + 3])], 1)

    def load_keys(base):
        keys = np.zeros((2, MAX_PAIRS, 32, 4), np.uint32)
        for u in range(2):
            for lane in range(32):
                key = base + 8 * u + G[lane]
                for j in range(MAX_PAIRS):
                    if j < pairs and key < end and 32 * j + 8 * T[lane] < hd:
                        w0 = (64 * j + 16 * T[lane]) // 4
                        keys[u, j, lane] = words(k_rows, key)[w0:w0 + 4]
        return keys

    def load_values(base):  # value_words[tile, i, lane]: word tile % 4 of chunk tile / 4, key i
        value_words = np.zeros((MAX_TILES, 4, 32), np.uint32)
        for i in range(4):
            for lane in range(32):
                key = base + 2 * T[lane] + (i & 1) + 8 * (i >> 1)
                for c in range(2):
                    if c < chunks and key < end and 64 * c + 8 * G[lane] < hd:
                        w0 = (128 * c + 16 * G[lane]) // 4
                        for k in range(4):
                            value_words[4 * c + k, i, lane] = words(v_rows, key)[w0 + k]
        return value_words

    stride = CONSUMER_WARPS * 16
    for warp in range(CONSUMER_WARPS):
        m = np.full(R, -np.inf, f32)
        l = np.zeros(32, f32)
        acc = np.zeros((MAX_TILES, 32, 4), f32)
        base = begin + warp * 16
        keys, value_words = load_keys(base), load_values(base)
        with np.errstate(invalid="ignore", over="ignore"):
            while base < end:
                d = np.zeros((2, 32, 4), f32)
                for j in range(pairs):
                    for u in range(2):
                        core.mma(d[u], q_frags[2 * j], keys[u, j, :, 0], keys[u, j, :, 1])
                        core.mma(d[u], q_frags[2 * j + 1], keys[u, j, :, 2], keys[u, j, :, 3])
                w = np.zeros((2, 2, 32), f32)
                round_max = np.full(32, -np.inf, f32)
                for u in range(2):
                    for e in range(2):
                        mid_part = np.where(LANE + 16 < 32, d[u][np.minimum(LANE + 16, 31), e], d[u][:, e])
                        valid = (G < 4) & (base + 8 * u + 2 * T + e < end)
                        w[u, e] = np.where(valid, f32(f32(d[u][:, e] + d[u][:, e + 2]) + mid_part), -np.inf)
                        round_max = np.fmax(round_max, w[u, e])
                round_max = np.fmax(round_max, round_max[LANE ^ 1])
                round_max = np.fmax(round_max, round_max[LANE ^ 2])
                m_new = np.array([max(m[h], round_max[4 * h]) for h in range(R)], f32)
                correction = np.exp(f32(m - m_new)).astype(f32)
                m = m_new
                total = np.zeros(32, f32)
                for u in range(2):
                    for e in range(2):
                        w[u, e] = np.exp(f32(w[u, e] - m_new[G % 4])).astype(f32)
                        total = f32(total + w[u, e])
                l = f32(l * correction[G % 4] + total)
                keys = load_keys(base + stride)
                source = 4 * (G % 4) + T
                x, x_lo = np.zeros((2, 2, 32), f32), np.zeros((2, 2, 32), f32)
                for u in range(2):
                    for e in range(2):
                        v = w[u, e][source]
                        hi = round_bf16(v)
                        rest = f32(v - hi)
                        mid = round_bf16(rest)
                        x[u, e] = np.where(G < 4, hi, mid if weight_parts == 3 else rest)
                        x_lo[u, e] = np.where(G < 4, f32(0), f32(rest - mid))
                b0, b1 = pack(x[0, 0], x[0, 1]), pack(x[1, 0], x[1, 1])
                b0_lo, b1_lo = pack(x_lo[0, 0], x_lo[0, 1]), pack(x_lo[1, 0], x_lo[1, 1])
                c0, c1 = correction[(2 * T) % 4], correction[(2 * T + 1) % 4]
                for i in range(tiles):
                    acc[i][:, 0] *= c0
                    acc[i][:, 1] *= c1
                    acc[i][:, 2] *= c0
                    acc[i][:, 3] *= c1
                    vw = value_words[i]
                    a = np.stack([prmt(vw[0], vw[1], 0x5410), prmt(vw[0], vw[1], 0x7632),
                                  prmt(vw[2], vw[3], 0x5410), prmt(vw[2], vw[3], 0x7632)], 1)
                    core.mma(acc[i], a, b0, b1)
                    if weight_parts == 3:
                        core.mma(acc[i], a, b0_lo, b1_lo)
                value_words = load_values(base + stride)
                base += stride
        l = f32(l + l[LANE ^ 1])
        l = f32(l + l[LANE ^ 2])
        for lane in range(32):
            if G[lane] < R and T[lane] == 0:
                max_sum[warp, G[lane]] = (m[G[lane]], l[lane])
        for i in range(MAX_TILES):
            acc[i] = f32(acc[i] + acc[i][LANE ^ 2])
            for lane in range(32):
                dim = 64 * (i // 4) + 8 * G[lane] + 2 * (i % 4)
                if i < tiles and T[lane] < 2 and 64 * (i // 4) + 8 * G[lane] < hd:
                    for e in range(4):
                        parts[warp, 2 * T[lane] + (e & 1), dim + (e >> 1)] = acc[i][lane, e]
    out, lse = np.full((heads, hd), np.nan), np.zeros(heads)
    with np.errstate(invalid="ignore"):
        for h in range(heads):  # merge_warp_states
            warp_max = max_sum[:, h, 0]
            top = warp_max.max()
            weight = np.exp(f32(warp_max - top)).astype(f32)
            total = f32((max_sum[:, h, 1] * weight).sum())
            lse[h] = top + np.log(total)
            out[h] = (parts[:, h, :] * f32(weight / total)[:, None]).sum(0)
    return out, lse


def exact(qs, k_rows, v_rows, begin, end, g0, heads, scale):
    k = from_bits(k_rows[begin:end]).astype(np.float64)
    v = from_bits(v_rows[begin:end]).astype(np.float64)
    s = (qs[g0:g0 + heads].astype(np.float64) * scale) @ k.T
    top = s.max(1, keepdims=True)
    e = np.exp(s - top)
    return (e @ v) / e.sum(1, keepdims=True), top[:, 0] + np.log(e.sum(1))


def float32_pass(qs, k_rows, v_rows, begin, end, g0, heads, scale, hd):
    """Float32 FMAs, scores over dims and outputs over keys in order: the FMA pass's precision."""
    k, v = from_bits(k_rows[begin:end]), from_bits(v_rows[begin:end])
    q = (qs[g0:g0 + heads] * f32(scale)).astype(f32)
    s = np.zeros((heads, end - begin), f32)
    for i in range(hd):
        s = f32(s + q[:, i:i + 1] * k[:, i][None, :])
    e = np.exp(f32(s - s.max(1, keepdims=True))).astype(f32)
    acc = np.zeros((heads, hd), f32)
    for key in range(end - begin):
        acc = f32(acc + e[:, key:key + 1] * v[key][None, :])
    return acc / e.sum(1, keepdims=True, dtype=f32)


def random_case(rng, hd, group, end, q_scale, k_scale, nan_outside=True, begin=0):
    rows = end + 24
    qs = (rng.standard_normal((group, hd)) * q_scale).astype(f32)
    k_rows = bf16_bits(rng.standard_normal((rows, hd)) * k_scale).astype(np.uint16)
    v_rows = bf16_bits(rng.standard_normal((rows, hd))).astype(np.uint16)
    if nan_outside:  # NaN rows outside the slice: a read there poisons the result
        k_rows[end:], v_rows[end:] = 0x7FC0, 0x7FC0
        k_rows[:begin], v_rows[:begin] = 0x7FC0, 0x7FC0
    return qs, k_rows, v_rows


def sweep(args, core):
    rng = np.random.default_rng(args.seed)
    worst, bad = 0.0, 0
    for hd in range(8, 129, 8):
        group = int(rng.integers(1, 9))
        slices = [(0, 1), (5, 6), (0, int(rng.integers(2, 120))),
                  (int(rng.integers(0, 50)), int(rng.integers(130, 260)))]
        for begin, end in slices:
            qs, k_rows, v_rows = random_case(rng, hd, group, end, 2, 2, begin=begin)
            scale = 1 / np.sqrt(hd)
            for g0 in range(0, group, R):
                heads = min(R, group - g0)
                out, lse = emulate(qs, k_rows, v_rows, begin, end, g0, heads, scale, hd, args.weight_parts, core)
                ref_out, ref_lse = exact(qs, k_rows, v_rows, begin, end, g0, heads, scale)
                err = max(np.abs(out - ref_out).max(), np.abs(lse - ref_lse).max())
                worst = max(worst, err) if np.isfinite(err) else np.inf
                if not err < 1e-4:
                    bad += 1
                    print(f"BAD head_dim {hd} group {group} g0 {g0} keys [{begin}, {end}): {err:.2e}")
        print(f"head_dim {hd}: worst error so far {worst:.2e}", flush=True)
    print(f"sweep: worst error {worst:.2e}, {bad} cases above 1e-4")
    return bad == 0


def precision(args, core):
    """Relative output error where a model's attention is (normalized heads, head_dim 16-128,
    group 4, 20-80 keys), against float64, beside a float32 FMA pass's on the same cases."""
    rng = np.random.default_rng(args.seed)
    ours, theirs = [], []
    for hd in (16, 64, 128):
        for _ in range(4):
            end = int(rng.integers(20, 80))
            qs, k_rows, v_rows = random_case(rng, hd, 4, end, 1, 1, nan_outside=False)
            scale = 1 / np.sqrt(hd)
            out, _ = emulate(qs, k_rows, v_rows, 0, end, 0, 4, scale, hd, args.weight_parts, core)
            ref_out, _ = exact(qs, k_rows, v_rows, 0, end, 0, 4, scale)
            f32_out = float32_pass(qs, k_rows, v_rows, 0, end, 0, 4, scale, hd)
            size = np.abs(ref_out).max()
            ours.append(np.abs(out - ref_out).max() / size)
            theirs.append(np.abs(f32_out - ref_out).max() / size)
    print(f"precision: tensor-core pass, worst relative error {max(ours):.1e} (mean {np.mean(ours):.1e}); "
          f"float32 pass {max(theirs):.1e} (mean {np.mean(theirs):.1e})")
    return max(ours) <= max(theirs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["sweep", "precision"])
    parser.add_argument("--weight-parts", type=int, choices=[2, 3], default=3)
    parser.add_argument("--truncate", action="store_true")
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    core = TensorCore(args.truncate)
    ok = sweep(args, core) if args.mode == "sweep" else precision(args, core)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
