#!/usr/bin/env python3
"""TTFT and throughput of the daemon with and without prefix caching (CPU backend, fortune-moe), at several shares
of each prompt taken from a few shared prefixes (issue 17).

Two daemons run side by side, one with --enable-prefix-caching=true and one with =false; for each share (0 %, 50 %,
90 % by default) and each round, moe-bench drives one then the other (the order alternates by round), so the noise of
this shared machine falls on both alike. Each run records the 1-minute load average before it. The table gives the
median over rounds of TTFT p50/p90, total tokens/s and output tokens/s, and the share of prompt tokens the cache
served (moe-bench's cached_tokens / input_tokens).

  bench/prefix_cache_bench.py [--build build] [--prompt-len 512] [--output-len 16] [--concurrency 4]
      [--num-requests 32] [--num-prefixes 4] [--shares 0,50,90] [--rounds 3] [--threads 0] [--json out.json]
"""
import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile

from moed_process import start_moed

ROOT = pathlib.Path(__file__).resolve().parents[1]


def start_daemon(build, caching, threads, log):
    proc, addr, _ = start_moed(build, ["--model", str(ROOT / "models/fortune-moe"), "--backend", "cpu", "--threads",
                                       str(threads), f"--enable-prefix-caching={str(caching).lower()}"],
                               log, "prefix_cache_bench")
    return proc, addr


def bench(build, addr, args, shared, seed):
    cmd = [str(build / "moe-bench"), "--addr", addr, "--concurrency", str(args.concurrency), "--num-requests",
           str(args.num_requests), "--prompt-len", str(args.prompt_len), "--output-len", str(args.output_len),
           "--ignore-eos", "--temperature", "0", "--seed", str(seed)]
    if shared > 0:
        cmd += ["--shared-prefix-len", str(shared), "--num-prefixes", str(args.num_prefixes)]
    load = os.getloadavg()[0]
    report = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    if report["requests"]["failed"]:
        sys.exit(f"prefix_cache_bench: moe-bench errors: {report['errors']}")
    return {"load1": load, "ttft_p50": report["ttft_ms"]["p50"], "ttft_p90": report["ttft_ms"]["p90"],
            "total_tps": report["total_tokens_per_s"], "output_tps": report["output_tokens_per_s"],
            "cached": report["cached_tokens"] / max(1, report["input_tokens"])}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", type=pathlib.Path, default=ROOT / "build")
    ap.add_argument("--prompt-len", type=int, default=512)
    ap.add_argument("--output-len", type=int, default=16)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--num-requests", type=int, default=32)
    ap.add_argument("--num-prefixes", type=int, default=4)
    ap.add_argument("--shares", default="0,50,90")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--json", type=pathlib.Path)
    args = ap.parse_args()
    shares = [int(s) for s in args.shares.split(",")]
    runs = {(s, c): [] for s in shares for c in (True, False)}
    with tempfile.TemporaryDirectory() as tmp:
        logs = {c: open(pathlib.Path(tmp) / f"moed-{c}.log", "w") for c in (True, False)}
        daemons = {c: start_daemon(args.build, c, args.threads, logs[c]) for c in (True, False)}
        try:
            for r in range(args.rounds):
                for s in shares:
                    shared = args.prompt_len * s // 100
                    # Each round its own prompts (seed), so no round finds the previous round's prefixes cached.
                    for c in ((True, False) if r % 2 == 0 else (False, True)):
                        runs[(s, c)].append(bench(args.build, daemons[c][1], args, shared, seed=1000 * r + s))
        finally:
            for proc, _ in daemons.values():
                proc.terminate()
                proc.wait(timeout=60)
    med = lambda xs: statistics.median(xs)
    print(f"| shared prefix | prefix caching | cached / prompt tokens | TTFT p50 ms | TTFT p90 ms | total tokens/s "
          f"| output tokens/s | load avg (1 min) |")
    print("|---|---|---|---|---|---|---|---|")
    for s in shares:
        for c in (False, True):
            rs = runs[(s, c)]
            loads = [x["load1"] for x in rs]
            print(f"| {s} % | {'on' if c else 'off'} | {med([x['cached'] for x in rs]) * 100:.1f} % "
                  f"| {med([x['ttft_p50'] for x in rs]):.1f} | {med([x['ttft_p90'] for x in rs]):.1f} "
                  f"| {med([x['total_tps'] for x in rs]):.0f} | {med([x['output_tps'] for x in rs]):.1f} "
                  f"| {min(loads):.1f}–{max(loads):.1f} |")
    if args.json:
        args.json.write_text(json.dumps({f"{s}:{'on' if c else 'off'}": v for (s, c), v in runs.items()}, indent=1))


if __name__ == "__main__":
    main()
