#!/usr/bin/env python3
"""The reference answer of Hugging Face transformers for a megalith random-weight model:
greedy tokens after a prompt, the log-probability of each, and the log-probability of each
prompt token given the ones before it. Prints one JSON object.

    python3 scripts/gpu/hf_reference.py --model /tmp/qwen3-0.6b --seed 1 \
        --prompt-ids 1,2,3 --max-new-tokens 64 [--dtype float32]

--model needs only config.json (megalith make-checkpoint --config-only); the weights are
megalith's random weights for --seed, computed on the GPU (megalith_hf.py).
"""
import argparse
import json
import sys

import torch
import transformers

import megalith_hf


class RoundingCache(transformers.DynamicCache):
    """A KV cache that stores keys and values rounded to `dtype` (and computes with them):
    megalith keeps its KV cache in the checkpoint's dtype while computing in float32."""

    def __init__(self, dtype, config):
        super().__init__(config=config)
        self.storage = dtype

    def update(self, key_states, value_states, layer_idx, *args, **kwargs):
        key_states = key_states.to(self.storage).to(key_states.dtype)
        value_states = value_states.to(self.storage).to(value_states.dtype)
        return super().update(key_states, value_states, layer_idx, *args, **kwargs)


def greedy(model, prompt, new_tokens, kv_dtype=None):
    """Greedy tokens after `prompt`, their log-probs, and the prompt's own log-probs. With
    `kv_dtype`, the KV cache holds keys and values rounded to it."""
    ids = torch.tensor([prompt], device="cuda")
    cache = RoundingCache(kv_dtype, model.config) if kv_dtype is not None else None
    out = model(input_ids=ids, past_key_values=cache, use_cache=True)
    logprobs = torch.log_softmax(out.logits[0].float(), dim=-1)
    prompt_logprobs = [logprobs[i, prompt[i + 1]].item() for i in range(len(prompt) - 1)]
    cache, last = out.past_key_values, logprobs[-1]
    tokens, token_logprobs = [], []
    for step in range(new_tokens):
        token = int(torch.argmax(last))
        tokens.append(token)
        token_logprobs.append(last[token].item())
        if step + 1 == new_tokens:
            break
        out = model(input_ids=torch.tensor([[token]], device="cuda"), past_key_values=cache,
                    use_cache=True)
        cache, last = out.past_key_values, torch.log_softmax(out.logits[0, -1].float(), dim=-1)
    return tokens, token_logprobs, prompt_logprobs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--prompt-ids", required=True)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    args = parser.parse_args()
    prompt = [int(x) for x in args.prompt_ids.split(",")]
    dtype = getattr(torch, args.dtype)
    with torch.no_grad():
        model = megalith_hf.build_model(args.model, args.seed, dtype=dtype)
        tokens, logprobs, prompt_logprobs = greedy(model, prompt, args.max_new_tokens)
    json.dump({"tokens": tokens, "logprobs": logprobs, "prompt_logprobs": prompt_logprobs,
               "dtype": args.dtype, "seed": args.seed, "model": args.model}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
