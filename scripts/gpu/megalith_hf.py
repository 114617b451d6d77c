"""Hugging Face transformers models with megalith's random weights.

megalith's random checkpoints are a pure function of (seed, weight name, element index)
(src/model/random_checkpoint.cc, random_weight). This module computes the same values with
torch on the GPU, so transformers can build the very model megalith runs, at any size,
without a checkpoint file: the reference for correctness and the peer for speed.

    model = build_model("/tmp/qwen3-8b", seed=1, dtype=torch.bfloat16)
"""
import json
import pathlib

import numpy as np
import torch
import transformers

_MASK64 = (1 << 64) - 1


def _signed(v):
    """A uint64 value as the int64 torch holds it."""
    v &= _MASK64
    return v - (1 << 64) if v >= 1 << 63 else v


def _mix_int(x):
    """splitmix64 on a Python int (the per-tensor part)."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def _srl(x, k):
    """Logical right shift of an int64 tensor (torch's >> is arithmetic)."""
    return (x >> k) & ((1 << (64 - k)) - 1)


def _mix_tensor(x):
    """splitmix64 on an int64 tensor; multiplication wraps modulo 2^64 as uint64's does."""
    x = x + _signed(0x9E3779B97F4A7C15)
    x = (x ^ _srl(x, 30)) * _signed(0xBF58476D1CE4E5B9)
    x = (x ^ _srl(x, 27)) * _signed(0x94D049BB133111EB)
    return x ^ _srl(x, 31)


def _fnv1a(name):
    h = 0xCBF29CE484222325
    for byte in name.encode():
        h = ((h ^ byte) * 0x100000001B3) & _MASK64
    return h


def random_weight(seed, name, shape, device="cuda", chunk=1 << 26):
    """The float32 tensor megalith's random_weight gives for (seed, name, shape)."""
    base = _signed(_mix_int((seed ^ _fnv1a(name)) & _MASK64))
    numel = int(np.prod(shape))
    out = torch.empty(numel, dtype=torch.float32, device=device)
    if len(shape) == 1:
        scale = None
    else:
        std = np.float32(0.3) if name == "model.embed_tokens.weight" else (
            np.float32(1.0) / np.sqrt(np.float32(shape[1])))
        scale = (float(std), float(np.sqrt(np.float32(3.0))))
    for first in range(0, numel, chunk):
        index = torch.arange(first, min(first + chunk, numel), dtype=torch.int64, device=device)
        bits = _mix_tensor(index + base)
        u = _srl(bits, 40).to(torch.float32) * (1.0 / 8388608.0) - 1.0
        if scale is None:
            u = 1.0 + 0.25 * u if name.endswith("norm.weight") else 0.1 * u
        else:
            u = u * scale[0] * scale[1]
        out[first:first + index.numel()] = u
    return out.view(*shape)


def build_model(model_dir, seed, dtype=torch.bfloat16, device="cuda"):
    """The transformers model of model_dir/config.json with megalith's random weights for
    `seed`, stored in the config's dtype and computing in `dtype`."""
    config = transformers.AutoConfig.from_pretrained(model_dir)
    stored = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[
        str(getattr(config, "dtype", None) or getattr(config, "torch_dtype", "bfloat16")).removeprefix("torch.")]
    with torch.device(device):
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name == "lm_head.weight" and config.tie_word_embeddings:
                continue
            value = random_weight(seed, name, tuple(param.shape), device=device)
            param.copy_(value.to(stored).to(dtype))
    return model


def load_config(model_dir):
    return json.loads((pathlib.Path(model_dir) / "config.json").read_text())
