#!/usr/bin/env python3
"""megalith on the GPU against Hugging Face transformers on the same weights: greedy tokens
after a prompt must be identical, and the log-probability of every token of the sequence
close. Runs on the GPU machine (it has torch and transformers).

    python3 scripts/gpu/compare_hf.py --megalith build/gpu/tools/megalith/megalith \
        --preset qwen3:qwen3-8b --preset llama:llama-3.2-1b --checkpoint tests/golden/fixtures/*

A --preset ARCH:NAME model gets megalith's random weights for --seed (generated on the GPU by
megalith, by megalith_hf.py for transformers); a --checkpoint DIR is read from its files by
both. The reference is megalith's numerical contract: transformers computing in float32 over
the stored weights, with its KV cache rounded to the stored dtype as megalith keeps it.

Greedy tokens must be identical to that reference, but for near-ties: where the float64 model
puts megalith's token and transformers' within twice transformers' own float32 error of each
other, either choice is within float32 arithmetic (transformers with a float32 KV cache flips
such tokens too). There megalith goes on from transformers' token, and the rest must match
again; at most MAX_TIES such tokens are accepted. Log-probs cannot be identical: float32
sums in a different order differ in their last bits, and a deep random network amplifies
that. So both are measured against the exact answer, the same model in float64, and
megalith's log-probs must be as close to it as transformers' own float32 ones, to within a
factor of 3 (plus 1e-4): the same order of error, whose size depends on the summation order. Prints one line per model and device and a summary; the exit status is 0 only
when every comparison passed.
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


def hf_model(model_dir, random_seed, dtype):
    if random_seed is not None:
        return megalith_hf.build_model(str(model_dir), random_seed, dtype=dtype)
    return transformers.AutoModelForCausalLM.from_pretrained(
        str(model_dir), dtype=dtype, device_map="cuda").eval()


MAX_TIES = 2


def hf_logprobs(model, sequence, kv_dtype, rows_from=None):
    """log P(sequence[i+1] | sequence[..i]) with the rounding KV cache, in one forward pass;
    with rows_from, also the whole distributions from position rows_from on (on the CPU)."""
    ids = torch.tensor([sequence], device="cuda")
    cache = hf_reference.RoundingCache(kv_dtype, model.config)
    logits = model(input_ids=ids, past_key_values=cache, use_cache=True).logits[0]
    logprobs = torch.log_softmax(logits.double(), dim=-1)
    chosen = [logprobs[i, sequence[i + 1]].item() for i in range(len(sequence) - 1)]
    if rows_from is None:
        return chosen
    return chosen, logprobs[rows_from:len(sequence) - 1].cpu()


def hf_answers(model_dir, random_seed, prompt, new_tokens, kv_dtype):
    """transformers' greedy tokens (float32), the log-probs of prompt + those tokens in float32
    and float64, and the float64 distributions of the generated tokens."""
    with torch.no_grad():
        model = hf_model(model_dir, random_seed, torch.float32)
        tokens, _, _ = hf_reference.greedy(model, prompt, new_tokens, kv_dtype)
        f32_cache_tokens, _, _ = hf_reference.greedy(model, prompt, new_tokens, None)
        f32 = hf_logprobs(model, prompt + tokens, kv_dtype)
        del model
        torch.cuda.empty_cache()
        model = hf_model(model_dir, random_seed, torch.float64)
        f64, f64_rows = hf_logprobs(model, prompt + tokens, kv_dtype, rows_from=len(prompt) - 1)
        del model
        torch.cuda.empty_cache()
    return tokens, f32_cache_tokens, f32, f64, f64_rows


def leading_match(a, b):
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def max_diff(a, b):
    return max(abs(x - y) for x, y in zip(a, b))


def compare(args, name, model_dir, random_seed):
    config = json.loads((pathlib.Path(model_dir) / "config.json").read_text())
    stored = STORAGE[str(config.get("dtype") or config.get("torch_dtype") or "bfloat16")]
    vocab = config["vocab_size"]
    prompt = [(i * 7919 + 13) % vocab for i in range(args.prompt_len)]
    hf_tokens, f32_cache_tokens, hf_f32, exact, exact_rows = hf_answers(
        model_dir, random_seed, prompt, args.new_tokens, stored)
    hf_error = max_diff(hf_f32, exact)
    weights = ["--random-weights", "--weights-seed", str(random_seed)] if random_seed is not None else []
    ok = True
    for device in args.devices.split(","):
        if device != "cuda" and megalith_params(config) > args.cpu_max_params:
            continue
        common = ["--model", str(model_dir), "--device", device, *weights]

        def generate(prefix, count):
            return megalith_json(args, "generate", *common, "--prompt-ids",
                                 ",".join(map(str, prefix)), "--max-new-tokens", str(count),
                                 "--ignore-eos")["tokens"]

        ours = generate(prompt, args.new_tokens)
        same = leading_match(ours, hf_tokens)
        ties = []
        while same < min(len(ours), len(hf_tokens)) and len(ties) < MAX_TIES:
            gap = (exact_rows[same, hf_tokens[same]] - exact_rows[same, ours[same]]).item()
            if abs(gap) > 2 * hf_error:
                break
            ties.append((same, gap))
            ours = hf_tokens[:same + 1] + generate(prompt + hf_tokens[:same + 1],
                                                   len(hf_tokens) - same - 1)
            same = leading_match(ours, hf_tokens)
        # Log-probs of the whole sequence transformers produced, next token by next token.
        scored = megalith_json(args, "score", *common, "--ids",
                               ",".join(map(str, prompt + hf_tokens)))["logprobs"]
        error = max_diff(scored, exact)
        passed = same == len(hf_tokens) == len(ours) and error <= 3 * hf_error + 1e-4
        ok = ok and passed
        tie_note = f" but {len(ties)} near-tie(s)" if ties else ""
        print(f"{'PASS' if passed else 'FAIL'} {name} on {device}: {same - len(ties)}/{len(hf_tokens)} "
              f"greedy tokens identical{tie_note}; max |logprob error| vs float64 {error:.1e} (transformers "
              f"float32: {hf_error:.1e}; megalith vs transformers {max_diff(scored, hf_f32):.1e}) "
              f"over {len(scored)} positions", flush=True)
        for token, gap in ties:
            print(f"  near-tie at token {token}: float64 log-prob gap {abs(gap):.1e} between the two "
                  f"choices (within 2 x {hf_error:.1e}); megalith went on from transformers' token",
                  flush=True)
        if same < len(hf_tokens):
            print(f"  first difference at token {same}: megalith {ours[same:same + 4]}, "
                  f"transformers {hf_tokens[same:same + 4]}", flush=True)
    print(f"  for scale: transformers with a float32 KV cache agrees on "
          f"{leading_match(f32_cache_tokens, hf_tokens)}/{len(hf_tokens)} tokens", flush=True)
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
