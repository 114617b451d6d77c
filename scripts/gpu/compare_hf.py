#!/usr/bin/env python3
"""megalith on the GPU against Hugging Face transformers on the same weights: greedy tokens
after a prompt must be identical, and the log-probability of every token of the sequence
close. Runs on the GPU machine (it has torch and transformers).

    python3 scripts/gpu/compare_hf.py --megalith build/gpu/tools/megalith/megalith \
        --preset qwen3:qwen3-8b --preset llama:llama-3.2-1b --checkpoint tests/golden/fixtures/*

A --preset ARCH:NAME model gets megalith's random weights for --seed (generated on the GPU by
megalith, by megalith_hf.py for transformers); a --checkpoint DIR is read from its files by
both. The reference is megalith's numerical contract: transformers computing in float32 over
the stored weights, with its KV cache rounded to the stored dtype as megalith keeps it. The
same model with a float32 KV cache is printed beside it, for scale. Prints one line per model
and device and a summary; the exit status is 0 only when every comparison matched.
"""
import argparse
import json
import pathlib
import subprocess
import sys
import tempfile

import torch
import transformers

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import hf_reference  # noqa: E402
import megalith_hf  # noqa: E402


def megalith_json(args, *command):
    out = subprocess.run([args.megalith, *command, "--json"], check=True, capture_output=True,
                         text=True)
    return json.loads(out.stdout)


STORAGE = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def hf_answer(model_dir, random_seed, prompt, new_tokens, kv_dtype):
    with torch.no_grad():
        if random_seed is not None:
            model = megalith_hf.build_model(str(model_dir), random_seed, dtype=torch.float32)
        else:
            model = transformers.AutoModelForCausalLM.from_pretrained(
                str(model_dir), dtype=torch.float32, device_map="cuda").eval()
        answers = [hf_reference.greedy(model, prompt, new_tokens, kv) for kv in (kv_dtype, None)]
        del model
        torch.cuda.empty_cache()
    return answers


def match(args, ours, scored, reference):
    hf_tokens, hf_logprobs, hf_prompt_logprobs = reference
    same = next((i for i, (a, b) in enumerate(zip(ours, hf_tokens)) if a != b), len(hf_tokens))
    expected = hf_prompt_logprobs + hf_logprobs
    diff = max(abs(a - b) for a, b in zip(scored, expected))
    return same, diff


def compare(args, name, model_dir, random_seed):
    config = json.loads((pathlib.Path(model_dir) / "config.json").read_text())
    stored = STORAGE[str(config.get("dtype") or config.get("torch_dtype") or "bfloat16")]
    vocab = config["vocab_size"]
    prompt = [(i * 7919 + 13) % vocab for i in range(args.prompt_len)]
    contract, f32_cache = hf_answer(model_dir, random_seed, prompt, args.new_tokens, stored)
    hf_tokens = contract[0]
    weights = ["--random-weights", "--weights-seed", str(random_seed)] if random_seed is not None else []
    ok = True
    for device in args.devices.split(","):
        if device != "cuda" and megalith_params(config) > args.cpu_max_params:
            continue
        common = ["--model", str(model_dir), "--device", device, *weights]
        ours = megalith_json(args, "generate", *common, "--prompt-ids", ",".join(map(str, prompt)),
                             "--max-new-tokens", str(args.new_tokens), "--ignore-eos")["tokens"]
        # Log-probs of the whole sequence transformers produced, next token by next token.
        scored = megalith_json(args, "score", *common, "--ids",
                               ",".join(map(str, prompt + hf_tokens)))["logprobs"]
        same, diff = match(args, ours, scored, contract)
        same32, diff32 = match(args, ours, scored, f32_cache)
        passed = same == len(hf_tokens) and len(ours) == len(hf_tokens) and diff <= args.logprob_atol
        ok = ok and passed
        print(f"{'PASS' if passed else 'FAIL'} {name} on {device}: {same}/{len(hf_tokens)} greedy "
              f"tokens identical, max |logprob diff| {diff:.2e} over {len(scored)} positions "
              f"(float32 KV cache: {same32}/{len(hf_tokens)}, {diff32:.2e})", flush=True)
        if same < len(hf_tokens):
            print(f"  first difference at token {same}: megalith {ours[same:same + 4]}, "
                  f"transformers {hf_tokens[same:same + 4]}", flush=True)
    return ok


def megalith_params(config):
    hidden, inter, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    return layers * (4 * hidden * hidden + 3 * hidden * inter) + 2 * config["vocab_size"] * hidden


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megalith", required=True)
    parser.add_argument("--preset", action="append", default=[], help="ARCH:NAME, repeatable")
    parser.add_argument("--checkpoint", nargs="*", default=[], help="model directories")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--prompt-len", type=int, default=16)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--logprob-atol", type=float, default=2e-3)
    parser.add_argument("--devices", default="cuda", help="megalith devices, e.g. cuda,cpu")
    parser.add_argument("--cpu-max-params", type=float, default=2e9,
                        help="larger models run on cuda only")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.preset:
            arch, preset = spec.split(":")
            model_dir = pathlib.Path(tmp) / preset
            subprocess.run([args.megalith, "make-checkpoint", "--arch", arch, "--preset", preset,
                            "--config-only", "--out", str(model_dir)], check=True,
                           capture_output=True)
            results.append(compare(args, preset, model_dir, args.seed))
        for directory in args.checkpoint:
            results.append(compare(args, pathlib.Path(directory).name, directory, None))
    print(f"compare_hf: {sum(results)}/{len(results)} models matched transformers on every device")
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
