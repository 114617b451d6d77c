#!/usr/bin/env python3
"""Compile-speed benchmark: the whole `megalith inspect` process (parse config.json, build the
decode graph, compile for 132 workers, verify, report) for the real-shape Qwen3-8B and
Llama-3.1-8B graphs. Appends one record per model to bench/results/compile_speed.json.

    python3 bench/compile_speed.py [--megalith build/release/tools/megalith/megalith] [--runs 7]
"""
import argparse
import datetime
import json
import pathlib
import platform
import statistics
import subprocess
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODELS = [("qwen3", "qwen3-8b"), ("llama", "llama-3.1-8b")]
MPK_COMPILE_S = 45.0  # Mirage persistent kernel, Qwen3-8B, as its authors report


def cpu_name():
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megalith", default=str(ROOT / "build/release/tools/megalith/megalith"))
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--workers", type=int, default=132)
    parser.add_argument("--out", default=str(ROOT / "bench/results/compile_speed.json"))
    args = parser.parse_args()

    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True, check=True).stdout.strip()
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        for arch, preset in MODELS:
            model = pathlib.Path(tmp) / preset
            subprocess.run([args.megalith, "make-checkpoint", "--arch", arch, "--preset", preset,
                            "--config-only", "--out", str(model)], check=True,
                           capture_output=True)
            cmd = [args.megalith, "inspect", "--model", str(model), "--workers", str(args.workers),
                   "--max-seq-len", "4096"]
            wall = []
            for _ in range(args.runs):
                start = time.perf_counter()
                out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
                wall.append(time.perf_counter() - start)
            stats = json.loads(subprocess.run(cmd + ["--json"], check=True, capture_output=True,
                                              text=True).stdout)["stats"]
            record = {
                "benchmark": "compile_speed",
                "model": preset,
                "workers": args.workers,
                "tasks": stats["tasks"],
                "events": stats["events"],
                "dependency_edges": stats["dependency_edges"],
                "process_s_median": round(statistics.median(wall), 4),
                "process_s_min": round(min(wall), 4),
                "runs": args.runs,
                "target_s": 1.0,
                "mpk_compile_s": MPK_COMPILE_S,
                "machine": f"{cpu_name()}, {len(__import__('os').sched_getaffinity(0))} cores",
                "commit": commit,
                "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            }
            print(f"{preset}: {record['tasks']} tasks, whole process median "
                  f"{record['process_s_median']:.3f} s (min {record['process_s_min']:.3f} s) "
                  f"over {args.runs} runs; first line: {out.splitlines()[0]}")
            records.append(record)
    out_path = pathlib.Path(args.out)
    existing = json.loads(out_path.read_text()) if out_path.exists() else []
    out_path.write_text(json.dumps(existing + records, indent=2) + "\n")


if __name__ == "__main__":
    main()
