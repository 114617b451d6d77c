#!/usr/bin/env python3
"""The peers of `megalith bench`: Hugging Face transformers decoding the same model (batch 1,
a 32-token prompt, 128 new tokens) eagerly and with torch.compile (mode "reduce-overhead",
static cache: CUDA graphs). Prints one JSON object with ms per generated token for each.

    python3 bench/hf_peers.py --model /tmp/qwen3-8b --seed 1 [--skip-compiled]

With --seed, the model is megalith's random weights for that seed (config.json is enough);
without it, the checkpoint in --model.
"""
import argparse
import json
import pathlib
import sys
import time

import torch
import transformers
from transformers.generation.configuration_utils import CompileConfig

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "scripts/gpu"))
import megalith_hf  # noqa: E402


def decode_ms_per_token(model, prompt, new_tokens, repeats=3):
    """Per-token decode time: a full generation minus one that stops after the first token."""
    def timed(new_tokens):
        torch.cuda.synchronize()
        start = time.perf_counter()
        model.generate(prompt, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                       do_sample=False)
        torch.cuda.synchronize()
        return time.perf_counter() - start
    timed(new_tokens)  # warm-up (and compilation)
    timed(new_tokens)
    full = min(timed(new_tokens) for _ in range(repeats))
    first = min(timed(1) for _ in range(repeats))
    return (full - first) / (new_tokens - 1) * 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="directory with config.json")
    parser.add_argument("--seed", type=int, help="megalith's random weights for this seed")
    parser.add_argument("--prompt-len", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--skip-compiled", action="store_true")
    args = parser.parse_args()
    with torch.no_grad():
        if args.seed is None:
            model = transformers.AutoModelForCausalLM.from_pretrained(
                args.model, dtype=torch.bfloat16, device_map="cuda").eval()
        else:
            model = megalith_hf.build_model(args.model, args.seed, dtype=torch.bfloat16)
        vocab = model.config.vocab_size
        # The prompt megalith bench uses: ids 1, 2, ..., prompt_len.
        prompt = torch.arange(1, args.prompt_len + 1, device="cuda").remainder(vocab).unsqueeze(0)
        model.generation_config.pad_token_id = 0
        result = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__,
                  "transformers": transformers.__version__,
                  "prompt_tokens": args.prompt_len, "new_tokens": args.new_tokens,
                  "hf_eager_ms": decode_ms_per_token(model, prompt, args.new_tokens)}
        if not args.skip_compiled:
            # transformers compiles the forward pass itself for a static cache
            # (CompileConfig: torch.compile, mode "reduce-overhead", i.e. CUDA graphs).
            model.generation_config.cache_implementation = "static"
            model.generation_config.compile_config = CompileConfig(
                mode="reduce-overhead", fullgraph=True)
            try:
                result["hf_compiled_ms"] = decode_ms_per_token(model, prompt, args.new_tokens)
            except Exception as error:  # noqa: BLE001 - reported in the record, not fatal
                result["hf_compiled_error"] = f"{type(error).__name__}: {str(error)[:300]}"
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()
