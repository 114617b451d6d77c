#!/usr/bin/env python3
"""megalith serve against real clients: the official `openai` Python package and curl.

Starts `megalith serve` on a free loopback port with a tiny random-weight Qwen2 model and the
test tokenizer, and checks that the clients see what `megalith generate` says (temperature 0),
streamed or not, that bad requests raise the client's error types, and that SIGINT stops the
server with status 0. Needs `pip install openai` (not part of scripts/setup; the C++ tests in
tests/unit/serve_test.cc cover the same ground over plain sockets in CI).

    scripts/check_serve_clients.py [build/release/tools/megalith/megalith]
"""
import json
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile

try:
    import openai
except ImportError:
    sys.exit("check_serve_clients: the openai package is missing: pip install openai")

ROOT = pathlib.Path(__file__).resolve().parent.parent
CLI = sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "build/release/tools/megalith/megalith")
POSITIONS = 64
NAME = "tiny-text"
results = {"passed": 0, "failed": 0}


def check(what, ok, detail=""):
    results["passed" if ok else "failed"] += 1
    print(f"{'ok  ' if ok else 'FAIL'} {what}" + ("" if ok else f": {detail}"))


def make_model(tmp):
    model = tmp / "model"
    subprocess.run([CLI, "make-checkpoint", "--arch", "qwen2", "--preset", "tiny", "--config-only",
                    "--out", str(model)], check=True, stdout=subprocess.DEVNULL)
    config = json.loads((model / "config.json").read_text())
    config["vocab_size"] = 1280  # room for the fixture tokenizer's ids
    (model / "config.json").write_text(json.dumps(config))
    shutil.copy(ROOT / "tests/tokenizer/fixtures/qwen2/tokenizer.json", model / "tokenizer.json")
    return model


def model_flags(model):
    return ["--model", str(model), "--random-weights", "--device", "cpu",
            "--max-seq-len", str(POSITIONS)]


def generate(model, *args):
    out = subprocess.run([CLI, "generate", *model_flags(model), "--temperature", "0", "--json",
                          *args], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def start_server(model):
    server = subprocess.Popen([CLI, "serve", "--port", "0", "--served-model-name", NAME,
                               *model_flags(model)], stderr=subprocess.PIPE, text=True)
    for line in server.stderr:
        found = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
        if found:
            return server, int(found.group(1))
    sys.exit(f"check_serve_clients: the server did not start (status {server.wait()})")


def check_openai_client(client, model):
    check("models.list", [m.id for m in client.models.list()] == [NAME])

    want = generate(model, "--prompt", "Hello world", "--max-new-tokens", "6")
    done = client.completions.create(model=NAME, prompt="Hello world", max_tokens=6,
                                     temperature=0)
    check("completions.create", done.choices[0].text == want["text"],
          f"{done.choices[0].text!r} != {want['text']!r}")
    check("completions usage", done.usage.completion_tokens == len(want["tokens"]) and
          done.usage.prompt_tokens == want["prompt_tokens"], done.usage)
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model=NAME, prompt="Hello world", max_tokens=6, temperature=0, stream=True))
    check("completions.create(stream=True)", streamed == want["text"], repr(streamed))

    want = generate(model, "--chat", "--prompt", "Hi there", "--max-new-tokens", "7")
    messages = [{"role": "user", "content": "Hi there"}]
    reply = client.chat.completions.create(model=NAME, messages=messages, max_tokens=7,
                                           temperature=0)
    check("chat.completions.create", reply.choices[0].message.content == want["text"] and
          reply.choices[0].message.role == "assistant", reply.choices[0].message)
    chunks = list(client.chat.completions.create(model=NAME, messages=messages,
                                                 max_completion_tokens=7, temperature=0,
                                                 stream=True,
                                                 stream_options={"include_usage": True}))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    check("chat.completions.create(stream=True)", streamed == want["text"], repr(streamed))
    check("stream usage", chunks[-1].usage is not None and
          chunks[-1].usage.completion_tokens == len(want["tokens"]), chunks[-1])

    for what, error, call in [
        ("max_tokens=-1", openai.BadRequestError,
         lambda: client.completions.create(model=NAME, prompt="x", max_tokens=-1)),
        ("n=2", openai.BadRequestError,
         lambda: client.chat.completions.create(model=NAME, messages=messages, n=2)),
        ("over the context", openai.BadRequestError,
         lambda: client.completions.create(model=NAME, prompt="x " * 100, max_tokens=4)),
        ("unknown model", openai.NotFoundError,
         lambda: client.completions.create(model="gpt-4", prompt="x")),
    ]:
        try:
            call()
            check(what, False, "no error")
        except error as e:
            check(what, isinstance(e.body, dict) and "message" in e.body, e.body)


def curl(port, path, *args, stdin=None):
    out = subprocess.run(["curl", "-sS", "-w", "\n%{http_code}", *args,
                          f"http://127.0.0.1:{port}{path}"], input=stdin, capture_output=True,
                         text=True)
    body, _, status = out.stdout.rpartition("\n")
    return int(status), body


def check_curl(port, model):
    status, body = curl(port, "/v1/models")
    check("curl GET /v1/models", status == 200 and json.loads(body)["data"][0]["id"] == NAME, body)
    want = generate(model, "--prompt", "Once upon a time", "--max-new-tokens", "5")
    request = json.dumps({"prompt": "Once upon a time", "max_tokens": 5, "temperature": 0,
                          "stream": True})
    status, body = curl(port, "/v1/completions", "-N", "-H", "Content-Type: application/json",
                        "-d", request)
    events = [e[len("data: "):] for e in body.split("\n\n") if e]
    text = "".join(json.loads(e)["choices"][0]["text"] for e in events[:-1])
    check("curl streamed completion", status == 200 and events[-1] == "[DONE]" and
          text == want["text"], body)
    for what, args, stdin, expected in [
            ("bad JSON", ["-d", "{oops"], None, 400),
            ("wrong method", ["-X", "DELETE"], None, 405),
            ("over-long body", ["--data-binary", "@-"], "x" * (5 << 20), 413)]:
        status, body = curl(port, "/v1/completions", *args, stdin=stdin)
        check(f"curl {what}", status == expected and "error" in json.loads(body), body)


def main():
    with tempfile.TemporaryDirectory() as tmp:
        model = make_model(pathlib.Path(tmp))
        server, port = start_server(model)
        try:
            client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none",
                                   max_retries=0)
            check_openai_client(client, model)
            check_curl(port, model)
        finally:
            server.send_signal(signal.SIGINT)
            status = server.wait(timeout=120)
        check("SIGINT stops the server with status 0", status == 0, status)
    print(f"{results['passed']} passed, {results['failed']} failed")
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
