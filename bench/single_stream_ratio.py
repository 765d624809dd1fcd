#!/usr/bin/env python3
"""The daemon's single-stream decode speed against moe-run's on the same tokens (CPU backend, fortune-moe).

Both run the same prompt greedily for the same number of tokens with the same CPU thread count, in alternating
rounds (this machine is noisy, so each side keeps its best and median round):
  - moe-run: per-token decode time = (wall time of --max-tokens N) − (wall time of --max-tokens 1), over N − 1
    tokens; the difference removes process start, model load and prefill.
  - moed: `moe-bench --concurrency 1` over loopback gRPC; per-token time = its time per output token after the
    first (tpot), so queueing, streaming and the client are included.
The ratio is moe-run's per-token time over the daemon's (1.0 = no serving overhead).

  bench/single_stream_ratio.py [--build build] [--tokens 512] [--rounds 5] [--threads 1]
"""
import argparse
import json
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

from moed_process import start_moed

ROOT = pathlib.Path(__file__).resolve().parents[1]
PROMPT = "Never trust a computer you can't throw out a window"


def wall(cmd):
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start


def moe_run_per_token(build, tokens, threads):
    base = [str(build / "moe-run"), "--model", str(ROOT / "models/fortune-moe"), "--prompt", PROMPT,
            "--temperature", "0", "--backend", "cpu", "--threads", str(threads)]
    one = min(wall(base + ["--max-tokens", "1"]) for _ in range(2))
    return (wall(base + ["--max-tokens", str(tokens)]) - one) / (tokens - 1)


def start_daemon(build, threads, log):
    proc, addr, _ = start_moed(build, ["--model", str(ROOT / "models/fortune-moe"), "--backend", "cpu", "--threads",
                                       str(threads)], log, "single_stream_ratio")
    return proc, addr


def daemon_per_token(build, addr, tokens, prompts_file):
    out = subprocess.run([str(build / "moe-bench"), "--addr", addr, "--concurrency", "1", "--num-requests", "2",
                          "--prompts-file", str(prompts_file), "--output-len", str(tokens), "--ignore-eos",
                          "--temperature", "0"], check=True, capture_output=True, text=True)
    report = json.loads(out.stdout)
    if report["requests"]["failed"]:
        sys.exit(f"single_stream_ratio: moe-bench errors: {report['errors']}")
    return report["tpot_ms"]["mean"] / 1000.0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", type=pathlib.Path, default=ROOT / "build")
    ap.add_argument("--tokens", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        prompts = pathlib.Path(tmp) / "prompt.txt"
        prompts.write_text(PROMPT + "\n")
        with open(pathlib.Path(tmp) / "moed.log", "w") as log:
            proc, addr = start_daemon(args.build, args.threads, log)
            try:
                runs, daemon = [], []
                for _ in range(args.rounds):
                    runs.append(moe_run_per_token(args.build, args.tokens, args.threads))
                    daemon.append(daemon_per_token(args.build, addr, args.tokens, prompts))
            finally:
                proc.terminate()
                proc.wait(timeout=60)
    result = {
        "tokens": args.tokens, "threads": args.threads, "rounds": args.rounds,
        "moe_run_ms_per_token": {"best": min(runs) * 1e3, "median": statistics.median(runs) * 1e3},
        "daemon_ms_per_token": {"best": min(daemon) * 1e3, "median": statistics.median(daemon) * 1e3},
        "ratio_best": min(runs) / min(daemon),
        "ratio_median": statistics.median(runs) / statistics.median(daemon),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
