#!/usr/bin/env python3
"""A bounded load test of `megalith serve` on loopback: N completions sent one at a time, then
all at once from N threads; every concurrent answer must be the text its request got alone.
Prints one JSON line: both rounds' wall times, tokens, and the requests whose text differed.

  scripts/gpu/serve_load.py MEGALITH [--device cuda] [--batch 4] [--requests 16] \
      [--max-tokens 64] [--model DIR]
"""
import argparse
import json
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request


def complete(port, prompt, max_tokens):
    body = json.dumps({"prompt": prompt, "max_tokens": max_tokens, "temperature": 0}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=600) as reply:
        answer = json.load(reply)
    return answer["choices"][0]["text"], answer["usage"]["completion_tokens"]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("megalith")
    p.add_argument("--device", default="cuda")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--requests", type=int, default=16)
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--model", default="")
    a = p.parse_args()
    command = [a.megalith, "serve", "--port", "0", "--device", a.device, "--batch", str(a.batch)]
    if a.model:
        command += ["--model", a.model]
    server = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    port = None
    for line in server.stderr:
        sys.stderr.write(line)
        found = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
        if found:
            port = int(found.group(1))
            break
    if port is None:
        sys.exit("the server did not start")
    threading.Thread(target=lambda: [sys.stderr.write(l) for l in server.stderr], daemon=True).start()

    prompts = [f"Story {i}: once upon a time, " + "far " * (i % 5) for i in range(a.requests)]
    start = time.perf_counter()
    alone = [complete(port, q, a.max_tokens) for q in prompts]
    sequential_s = time.perf_counter() - start

    together = [None] * a.requests

    def send(i):
        together[i] = complete(port, prompts[i], a.max_tokens)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(a.requests)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    concurrent_s = time.perf_counter() - start
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=60)
    tokens = sum(n for _, n in alone)
    print(json.dumps({
        "device": a.device, "batch": a.batch, "requests": a.requests, "tokens": tokens,
        "sequential_s": round(sequential_s, 3), "concurrent_s": round(concurrent_s, 3),
        "speedup": round(sequential_s / concurrent_s, 2),
        "differing": [i for i in range(a.requests) if together[i] != alone[i]],
    }))
    return 0 if all(together[i] == alone[i] for i in range(a.requests)) else 1


if __name__ == "__main__":
    sys.exit(main())
