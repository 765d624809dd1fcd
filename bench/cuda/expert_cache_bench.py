#!/usr/bin/env python3
"""The hot-expert cache through moed: decode tok/s of the synthetic Mixtral-8x7B shape with a partial cache, at
concurrency 1 and 16, prefetch on and off, against the floor measured in the same run. Standard library only.

Routing: synthetic random weights route almost uniformly, so the CUDA run imposes a Zipf expert popularity with
--router-zipf (a per-layer logit bias −s·ln(rank+1), routing stays hidden-state dependent so prefetch's predictor
means something). The full model (32 layers, 84 GiB of routed experts) cannot be filled and pinned within the step's
budget, so the run keeps Mixtral's per-layer geometry with --synthetic-layers N and imposes the resident fraction
the full model would get on this device (gpu-expert-cache-floor-bench: free memory − dense weights − KV − headroom).

Floor, per load: the same reduced model with every expert in a slot (--expert-cache-fraction 1, same routing, same
per-layer path, measured here after a warm-up: the HBM-bound time of the same requests on this code) + the bytes the cache had to bring in (demand loads + used prefetches, × one expert's bytes)
÷ the pinned host→device bandwidth measured here. The figure: floor time / measured time (1 = at the floor;
the issue's target is within 1.25×, i.e. ≥ 0.8).

  expert_cache_bench.py --runner RUN --backend cuda|cpu --json OUT [--layers 4] [--zipf 1.0] [--output-len 48]
With --backend cpu (the rehearsal): the small variant, no imposed routing (the CPU backend refuses it), no floor
tool; every other part (moed with the cache, metrics, moe-bench, the JSON) runs.
"""
import argparse
import json
import pathlib
import re
import signal
import subprocess
import sys
import time
import urllib.request



def scrape(url):
    """{(family, frozenset(labels)): value} of a Prometheus text page."""
    out = {}
    for line in urllib.request.urlopen(url, timeout=10).read().decode().splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][\w:]*)(\{(.*)\})?\s+(\S+)$", line)
        if not m:
            continue
        labels = frozenset(re.findall(r'(\w+)="([^"]*)"', m.group(3) or ""))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def total(page, family, **labels):
    want = set(labels.items())
    return sum(v for (f, ls), v in page.items() if f == family and want <= set(ls))


def start_moed(runner, flags, log_path, timeout=240):
    log = open(log_path, "w")
    proc = subprocess.Popen([*runner, "moed", "--host", "127.0.0.1", "--port", "0", "--metrics-port", "0", *flags],
                            stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = re.search(r"on (127\.0\.0\.1:\d+), metrics on (\S+):(\d+)", pathlib.Path(log_path).read_text())
        if m:
            return proc, m.group(1), f"http://127.0.0.1:{m.group(3)}/metrics"
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("moed did not start:\n" + pathlib.Path(log_path).read_text()[-2000:])


def stop_moed(proc):
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()


def run_load(runner, addr, url, concurrency, output_len, expert_bytes):
    """One moe-bench load; the cache counters' deltas around it."""
    before = scrape(url)
    p = subprocess.run([*runner, "moe-bench", "--addr", addr, "--concurrency", str(concurrency),
                        "--num-requests", str(concurrency), "--prompt-len", "16", "--output-len", str(output_len),
                        "--ignore-eos", "--temperature", "0"], capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        raise RuntimeError(f"moe-bench c={concurrency} failed: {p.stderr[-1000:]}")
    bench = json.loads(p.stdout)
    after = scrape(url)
    d = lambda family, **labels: total(after, family, **labels) - total(before, family, **labels)  # noqa: E731
    hits, misses = d("moed_expert_cache_hits_total"), d("moed_expert_cache_misses_total")
    demand, prefetch = d("moed_expert_cache_loads_total", kind="demand"), d("moed_expert_cache_loads_total", kind="prefetch")
    used, wasted = d("moed_expert_cache_prefetches_total", result="used"), d("moed_expert_cache_prefetches_total", result="wasted")
    return {"concurrency": concurrency, "ok": bench["requests"]["ok"], "failed": bench["requests"]["failed"],
            "output_tokens": bench.get("output_tokens"), "output_tokens_per_s": bench.get("output_tokens_per_s"),
            "duration_s": bench.get("duration_s"), "tpot_ms_p50": (bench.get("tpot_ms") or {}).get("p50"),
            "steps": d("moed_engine_steps_total"),
            "hit_rate": hits / (hits + misses) if hits + misses > 0 else None,
            "demand_loads": demand, "prefetch_loads": prefetch, "prefetch_used": used, "prefetch_wasted": wasted,
            "stall_s": d("moed_expert_cache_stall_seconds_total"),
            "transfer_bytes": d("moed_expert_cache_transfer_bytes_total"),
            "needed_bytes": (demand + used) * expert_bytes}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runner", required=True, help="the command that runs a bundled program (bundle/run)")
    ap.add_argument("--backend", choices=["cuda", "cpu"], required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--logs", default="/tmp")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--zipf", type=float, default=1.0)
    ap.add_argument("--output-len", type=int, default=48)
    ap.add_argument("--concurrency", default="1,16")
    a = ap.parse_args()
    # The step's `timeout` sends SIGTERM: leave through the finally blocks, so no moed outlives the step.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(124))
    runner = a.runner.split()
    cuda = a.backend == "cuda"
    report = {"backend": a.backend, "routing": None, "rows": [], "error": None}
    logs = pathlib.Path(a.logs)

    def write():
        pathlib.Path(a.json).write_text(json.dumps(report, indent=1) + "\n")

    try:
        kv = ["--max-running-seqs", "16", "--max-model-len", "512"]
        if cuda:
            model = ["--model", "synthetic:mixtral-8x7b", "--synthetic-layers", str(a.layers)]  # prompts as ids
            # The KV reservation the full model would take with these limits: 16 × 512 tokens × 32 layers × K,V.
            floor_json = logs / "expert_cache_floor.json"
            p = subprocess.run([*runner, "gpu-expert-cache-floor-bench", "--kv-bytes", str(16 * 512 * 32 * 2 * 1024 * 2),
                                "--json", str(floor_json)], capture_output=True, text=True, timeout=120)
            print(p.stdout, p.stderr, end="")
            floor = json.loads(floor_json.read_text())
            if p.returncode != 0:
                raise RuntimeError("floor: " + str(floor.get("error")))
            report["floor"] = floor
            fraction = floor["resident_fraction"]
            report["routing"] = (f"imposed Zipf popularity, exponent {a.zipf} (--router-zipf: logit bias "
                                 f"-s*ln(rank+1), a seeded order per layer)")
            skew = ["--router-zipf", str(a.zipf)]
            report["shape"] = (f"Mixtral-8x7B per-layer geometry, {a.layers} of 32 layers; resident fraction "
                               f"{fraction} = what the full 32-layer model keeps on this device")
            expert_bytes = 3 * 4096 * 14336 * 2
        else:
            model = ["--model", "synthetic:mixtral-8x7b-small"]
            fraction = 0.5
            skew = []
            report["routing"] = "the model's own router on random weights (rehearsal: nearly uniform)"
            report["shape"] = "rehearsal: mixtral-8x7b-small (2 layers), fraction 0.5, no floor"
            expert_bytes = 3 * 128 * 64 * 4  # the CPU tier's fp32 slot of the small variant (hidden 128, ffn 64)
        report["fraction"] = fraction
        report["expert_bytes"] = expert_bytes
        loads = [int(c) for c in a.concurrency.split(",")]
        # The reference: every expert in a slot (fraction 1) with the same imposed routing and the same per-layer
        # path, so it differs from the cached runs only by the copies the smaller cache needs.
        configs = [("resident", ["--expert-cache-fraction", "1", "--expert-cache-prefetch=false", *skew])]
        configs += [(f"cache, prefetch {'on' if pf else 'off'}",
                     ["--expert-cache-fraction", str(fraction), f"--expert-cache-prefetch={'true' if pf else 'false'}",
                      *skew]) for pf in (True, False)]
        resident = {}
        for name, flags in configs:
            proc, addr, url = start_moed(runner, [*model, "--backend", a.backend, *kv, *flags],
                                         str(logs / f"expert_cache_moed_{len(report['rows'])}.log"))
            try:
                run_load(runner, addr, url, max(loads), 8, expert_bytes)  # warm-up: first loads, allocations
                for c in loads:
                    row = run_load(runner, addr, url, c, a.output_len, expert_bytes)
                    row["config"] = name
                    if name == "resident":
                        resident[c] = row
                    else:
                        base = resident.get(c)
                        if cuda and base and base.get("output_tokens_per_s") and row.get("output_tokens_per_s"):
                            tokens = row["output_tokens"]
                            floor_s = tokens / base["output_tokens_per_s"] + row["needed_bytes"] / report["floor"]["h2d_bytes_per_s"]
                            row["floor_tokens_per_s"] = tokens / floor_s
                            row["of_floor"] = row["output_tokens_per_s"] / row["floor_tokens_per_s"]
                    report["rows"].append(row)
                    write()
                    print(f"{name:>22} c={c:<3} {row['output_tokens_per_s'] or 0:9.1f} tok/s  hit rate "
                          f"{row['hit_rate'] if row['hit_rate'] is not None else float('nan'):.3f}  stall "
                          f"{row['stall_s']:.3f} s  wasted prefetches {row['prefetch_wasted']:.0f}  "
                          f"of floor {row.get('of_floor', float('nan')):.2f}")
            finally:
                stop_moed(proc)
    except Exception as e:  # noqa: BLE001 — the step records any failure in its JSON and exits non-zero
        report["error"] = str(e)
        write()
        print(f"expert_cache_bench: {e}", file=sys.stderr)
        return 1
    write()
    bad = [r for r in report["rows"] if r["failed"] or not r["ok"]]
    cached = [r for r in report["rows"] if r["config"] != "resident"]
    if bad or not cached or any(r["hit_rate"] is None for r in cached):
        print("expert_cache_bench: failed requests or a cached run without cache accesses", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
