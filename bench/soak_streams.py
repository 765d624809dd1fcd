#!/usr/bin/env python3
"""Soak benchmark (issue 12), not a test: N concurrent Generate streams (10,000 by default) on loopback against one
moed (built-in fortune-moe, CPU backend). moe-bench opens every stream at once (closed loop, concurrency = N, N
requests) over one HTTP/2 connection; this script raises the fd limit, starts moed with the limits such a run needs
(queue, tokenizer queue, streams per connection), samples moed's RSS and the moed_streams_open gauge while it runs,
and prints one JSON summary per round: RSS at start, peak (VmHWM) and after the round, the most streams seen open
at once, p50/p99 TTFT and total latency, errors. --rounds 2 runs the same load again on the same daemon: RSS that
keeps growing round after round is a leak, RSS that stays at the first round's peak is memory kept for reuse.

  bench/soak_streams.py [--build build] [--streams 10000] [--prompt-len 8] [--output-len 8] [--threads 0]
      [--max-running-seqs 256] [--timeout 900s] [--rounds 1]
"""
import argparse
import json
import os
import pathlib
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from moed_process import start_moed

ROOT = pathlib.Path(__file__).resolve().parents[1]


def rss_kib(pid):
    """(VmRSS, VmHWM) of a process in KiB."""
    status = pathlib.Path(f"/proc/{pid}/status").read_text()
    get = lambda key: int(re.search(rf"^{key}:\s+(\d+) kB", status, re.M).group(1))  # noqa: E731
    return get("VmRSS"), get("VmHWM")


def start_daemon(build, args, log):
    n = args.streams
    flags = ["--backend", "cpu", "--threads", str(args.threads), "--max-running-seqs", str(args.max_running_seqs),
             "--max-queue", str(n + 16), "--tokenizer-queue", str(n + 16),
             "--grpc-max-streams-per-connection", str(n + 16), "--stream-stall-timeout", "600s"]
    proc, addr, metrics_url = start_moed(build, flags, log, "soak_streams", timeout=120)
    return proc, flags, addr, metrics_url


def gauge(metrics_url, name):
    with urllib.request.urlopen(metrics_url, timeout=10) as r:
        m = re.search(rf"^{name}(?:{{[^}}]*}})? (\S+)$", r.read().decode(), re.M)
    return float(m.group(1)) if m else None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", type=pathlib.Path, default=ROOT / "build")
    ap.add_argument("--streams", type=int, default=10000)
    ap.add_argument("--prompt-len", type=int, default=8)
    ap.add_argument("--output-len", type=int, default=8)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--max-running-seqs", type=int, default=256)
    ap.add_argument("--timeout", default="900s", help="moe-bench's per-request deadline")
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, 4 * args.streams + 1024))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))  # inherited by moed and moe-bench

    with tempfile.NamedTemporaryFile("w+", suffix=".log") as log:
        proc, moed_flags, addr, metrics_url = start_daemon(args.build, args, log)
        try:
            rss_start, _ = rss_kib(proc.pid)
            for round_no in range(1, args.rounds + 1):
                samples = {"streams_open_max": 0.0, "running_max": 0.0}
                done = threading.Event()

                def sample():
                    while not done.is_set():
                        try:
                            samples["streams_open_max"] = max(samples["streams_open_max"],
                                                              gauge(metrics_url, "moed_streams_open") or 0)
                            samples["running_max"] = max(samples["running_max"],
                                                         gauge(metrics_url, "moed_requests_running") or 0)
                        except OSError:
                            pass
                        done.wait(0.5)

                sampler = threading.Thread(target=sample)
                sampler.start()
                bench_cmd = [str(args.build / "moe-bench"), "--addr", addr, "--concurrency", str(args.streams),
                             "--num-requests", str(args.streams), "--prompt-len", str(args.prompt_len),
                             "--output-len", str(args.output_len), "--ignore-eos", "--temperature", "0",
                             "--timeout", args.timeout]
                start = time.monotonic()
                out = subprocess.run(bench_cmd, capture_output=True, text=True)
                wall = time.monotonic() - start
                done.set()
                sampler.join()
                if out.returncode != 0:
                    sys.exit(f"soak_streams: moe-bench exited {out.returncode}:\n{out.stderr}")
                report = json.loads(out.stdout)
                time.sleep(2)  # let the last streams close
                rss_after, rss_peak = rss_kib(proc.pid)
                summary = {
                    "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                    "moed": " ".join(["moed --host 127.0.0.1 --port 0 --metrics-port 0"] + moed_flags),
                    "moe_bench": " ".join(["moe-bench"] + bench_cmd[1:]),
                    "cpus": os.cpu_count(), "load1_after": os.getloadavg()[0],
                    "round": round_no, "streams": args.streams, "wall_s": round(wall, 1),
                    "streams_open_max_seen": samples["streams_open_max"], "running_max_seen": samples["running_max"],
                    "requests": report["requests"], "errors": report["errors"],
                    "error_examples": report["error_examples"],
                    "rss_mib": {"start": round(rss_start / 1024, 1), "peak": round(rss_peak / 1024, 1),
                                "after": round(rss_after / 1024, 1)},
                    "ttft_ms": {k: round(report["ttft_ms"][k], 1) for k in ("p50", "p99", "max")},
                    "e2e_ms": {k: round(report["e2e_ms"][k], 1) for k in ("p50", "p99", "max")},
                    "output_tokens_per_s": round(report["output_tokens_per_s"], 1),
                }
                print(json.dumps(summary, indent=2))
        finally:
            proc.terminate()
            proc.wait(timeout=120)


if __name__ == "__main__":
    main()
