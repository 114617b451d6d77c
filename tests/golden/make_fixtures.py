#!/usr/bin/env python3
"""Golden fixtures from Hugging Face transformers: small random models of every supported
architecture and config style, with the float32 logits of a prompt and 32 greedy tokens.

Run where torch and transformers are installed (the GPU machine has them; everything runs on
its CPU in float32 so no TF32 or kernel choice can blur the numbers):

    python3 tests/golden/make_fixtures.py --out tests/golden/fixtures

Each fixture directory holds a Hugging Face checkpoint (config.json + safetensors) plus
expected.json (prompt, greedy tokens, provenance) and logits.safetensors ("logits": F32
[prompt_len, vocab]). The C++ golden test requires the reference model to match them.
"""
import argparse
import json
import math
import random
import shutil
from pathlib import Path

import torch
import transformers
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config, Qwen3Config

GREEDY_TOKENS = 32
PROMPT_LEN = 12
MIN_MARGIN = 2e-3  # smallest allowed gap between the top two logits along the greedy path

COMMON = dict(vocab_size=256, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
              bos_token_id=1, eos_token_id=2)

# name, config class, config kwargs, storage dtype, config style, max shard size (None: 1 file)
CASES = [
    ("llama_hub_bf16_llama3rope_tied", LlamaConfig,
     dict(rope_parameters=dict(rope_type="llama3", rope_theta=500000.0, factor=8.0,
                               low_freq_factor=1.0, high_freq_factor=4.0,
                               original_max_position_embeddings=32),
          tie_word_embeddings=True, rms_norm_eps=1e-5), torch.bfloat16, "hub", None),
    ("llama_v5_f32_bias_headdim_sharded", LlamaConfig,
     dict(head_dim=24, attention_bias=True, mlp_bias=True, tie_word_embeddings=False,
          rope_parameters=dict(rope_type="default", rope_theta=10000.0)),
     torch.float32, "v5", "300KB"),
    ("qwen2_hub_f16", Qwen2Config,
     dict(tie_word_embeddings=False, rope_parameters=dict(rope_type="default", rope_theta=1e6)),
     torch.float16, "hub", None),
    ("qwen2_v5_bf16_linearrope_tied", Qwen2Config,
     dict(tie_word_embeddings=True,
          rope_parameters=dict(rope_type="linear", factor=2.0, rope_theta=10000.0)),
     torch.bfloat16, "v5", None),
    ("qwen3_hub_bf16_headdim", Qwen3Config,
     dict(head_dim=32, tie_word_embeddings=False,
          rope_parameters=dict(rope_type="default", rope_theta=1e6)),
     torch.bfloat16, "hub", None),
    ("qwen3_v5_bf16_tied_sharded", Qwen3Config,
     dict(head_dim=16, num_key_value_heads=1, tie_word_embeddings=True,
          rope_parameters=dict(rope_type="default", rope_theta=1e6)),
     torch.bfloat16, "v5", "100KB"),
]


def randomize(model, generator):
    """Weights whose activations stay O(1) at every depth, so logits are well separated
    (transformers' own 0.02-std init gives near-uniform logits and fragile greedy choices)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                if name.endswith("norm.weight"):
                    p.copy_(1 + 0.25 * (2 * torch.rand(p.shape, generator=generator) - 1))
                else:
                    p.copy_(0.1 * (2 * torch.rand(p.shape, generator=generator) - 1))
            elif "embed_tokens" in name:
                # Small enough that the layers, not the token's own embedding, decide the
                # next token (tied models otherwise just repeat their input).
                p.copy_(0.3 * torch.randn(p.shape, generator=generator))
            else:
                p.copy_(torch.randn(p.shape, generator=generator) / math.sqrt(p.shape[1]))


def to_hub_style(config_path):
    """Rewrite transformers 5's config.json the way checkpoints on the Hub spell it."""
    cfg = json.loads(config_path.read_text())
    params = dict(cfg.pop("rope_parameters"))
    cfg["rope_theta"] = params.pop("rope_theta")
    rope_type = params.get("rope_type", "default")
    cfg["rope_scaling"] = None if rope_type == "default" else params
    cfg["torch_dtype"] = cfg.pop("dtype")
    config_path.write_text(json.dumps(cfg, indent=2) + "\n")


def greedy(model, prompt):
    """Greedy decoding by full recomputation: no cache, nothing to get wrong."""
    ids = list(prompt)
    margins = []
    for _ in range(GREEDY_TOKENS):
        logits = model(torch.tensor([ids])).logits[0, -1]
        top2 = torch.topk(logits, 2).values
        margins.append(float(top2[0] - top2[1]))
        ids.append(int(torch.argmax(logits)))
    return ids[len(prompt):], min(margins)


def make_fixture(out_dir, name, config_cls, kwargs, dtype, style, shard):
    for seed in range(100):
        generator = torch.Generator().manual_seed(seed)
        config = config_cls(**{**COMMON, **kwargs})
        config._attn_implementation = "eager"
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
        randomize(model, generator)
        # Round the weights (not the rotary buffers: model.to() would round those too) to the
        # storage dtype so both sides compute with the same values.
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(p.to(dtype).to(torch.float32))
        prompt = torch.randint(3, config.vocab_size, (PROMPT_LEN,), generator=generator).tolist()
        with torch.no_grad():
            tokens, margin = greedy(model, prompt)
            logits = model(torch.tensor([prompt])).logits[0].float().contiguous()
        if margin >= MIN_MARGIN:
            break
        print(f"{name}: seed {seed} has a near tie (margin {margin:.2e}), trying the next")
    else:
        raise RuntimeError(f"{name}: no seed without near ties")

    target = out_dir / name
    shutil.rmtree(target, ignore_errors=True)
    save_kwargs = {"max_shard_size": shard} if shard else {}
    model.to(dtype).save_pretrained(target, **save_kwargs)
    if style == "hub":
        to_hub_style(target / "config.json")
    for extra in ("generation_config.json",):
        (target / extra).unlink(missing_ok=True)

    # The saved directory, read back by transformers, must give the same logits: proves the
    # Hub-style rewrite means what transformers means by it.
    reloaded = AutoModelForCausalLM.from_pretrained(target, dtype=torch.float32,
                                                    attn_implementation="eager").eval()
    with torch.no_grad():
        again = reloaded(torch.tensor([prompt])).logits[0].float()
    reload_diff = float((again - logits).abs().max())
    assert reload_diff <= 1e-5, f"{name}: reloaded checkpoint differs by {reload_diff}"

    save_file({"logits": logits}, str(target / "logits.safetensors"))
    expected = {
        "prompt": prompt,
        "greedy_tokens": tokens,
        "min_greedy_margin": margin,
        "seed": seed,
        "config_style": style,
        "storage_dtype": str(dtype).removeprefix("torch."),
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
    }
    (target / "expected.json").write_text(json.dumps(expected, indent=2) + "\n")
    files = sorted(p.name for p in target.iterdir())
    print(f"{name}: seed {seed}, margin {margin:.3g}, reload diff {reload_diff:.2g}, files {files}")


def random_case(rng, index):
    """A model no test has seen: random architecture, shape, options, dtype and config style."""
    arch, config_cls = rng.choice([("llama", LlamaConfig), ("qwen2", Qwen2Config),
                                   ("qwen3", Qwen3Config)])
    kv_heads = rng.choice([1, 2, 4])
    heads = kv_heads * rng.choice([1, 2, 3])
    head_dim = rng.choice([8, 16, 24, 32])
    # Llama requires hidden_size to be a multiple of the head count even with its own head_dim.
    kwargs = dict(vocab_size=rng.randint(64, 400), hidden_size=heads * rng.choice([8, 16, 24]),
                  intermediate_size=rng.randint(40, 200), num_hidden_layers=rng.randint(1, 3),
                  num_attention_heads=heads, num_key_value_heads=kv_heads, head_dim=head_dim,
                  tie_word_embeddings=rng.random() < 0.5,
                  rms_norm_eps=rng.choice([1e-6, 1e-5]))
    rope_type = rng.choice(["default", "linear", "llama3"])
    rope = dict(rope_type=rope_type, rope_theta=rng.choice([10000.0, 500000.0, 1e6]))
    if rope_type == "linear":
        rope["factor"] = rng.choice([2.0, 4.0])
    if rope_type == "llama3":
        rope.update(factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                    original_max_position_embeddings=rng.choice([16, 32, 64]))
    kwargs["rope_parameters"] = rope
    if arch in ("llama", "qwen3"):
        kwargs["attention_bias"] = rng.random() < 0.5
    if arch == "llama":
        kwargs["mlp_bias"] = rng.random() < 0.5
    if arch == "qwen2":  # Qwen2's config has no head_dim: it is hidden_size / heads
        kwargs["hidden_size"] = heads * kwargs.pop("head_dim")
    dtype = rng.choice([torch.bfloat16, torch.float16, torch.float32])
    style = rng.choice(["hub", "v5"])
    shard = rng.choice([None, "60KB"])
    return (f"unseen{index:02d}_{arch}", config_cls, kwargs, dtype, style, shard)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "fixtures")
    parser.add_argument("--unseen", type=int, default=0,
                        help="instead of the committed cases, make this many random models")
    parser.add_argument("--seed", type=int, default=0, help="seed for --unseen")
    args = parser.parse_args()
    torch.set_num_threads(4)
    args.out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    cases = [random_case(rng, i) for i in range(args.unseen)] if args.unseen else CASES
    for case in cases:
        make_fixture(args.out, *case)


if __name__ == "__main__":
    main()
