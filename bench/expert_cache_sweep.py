#!/usr/bin/env python3
"""Hot-expert cache sweep on fortune-moe's real routing: hit rate against cache size (1..8 experts per MoE layer)
for each policy, with and without prefetch.

Drives `moe-run --prompts-file ... --stats-out` (one process per configuration; the prompts run one after another on
one warm cache), then writes a CSV, a PNG plot and prints a Markdown table.

  bench/expert_cache_sweep.py [--build build] [--model models/fortune-moe]
                              [--prompts bench/prompts/fortune_prompts.txt] [--max-tokens 32] [--jobs 2]
"""
import argparse
import concurrent.futures
import csv
import json
import os
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
POLICIES = ["lru", "lfu", "load-aware"]
FIELDS = ["policy", "prefetch", "experts_per_layer", "slots", "accesses", "hits", "misses", "hit_rate", "evictions",
          "prefetch_issued", "prefetch_used", "prefetch_wasted", "bytes_transferred", "load_seconds", "stall_seconds"]


def find_moe_run(build):
    for candidate in (build / "moe-run", build / "client" / "moe-run"):
        if candidate.exists():
            return candidate
    sys.exit(f"expert_cache_sweep: moe-run not found under {build} (build it, or pass --build)")


def run_stats(args, moe_run, slots, policy, prefetch):
    with tempfile.TemporaryDirectory() as tmp:
        stats = pathlib.Path(tmp) / "stats.json"
        cmd = [str(moe_run), "--model", str(args.model), "--prompts-file", str(args.prompts), "--max-tokens",
               str(args.max_tokens), "--temperature", "0", "--backend", "cpu", "--threads", "1", "--json",
               "--expert-cache-slots", str(slots), "--expert-cache-policy", policy,
               f"--expert-cache-prefetch={str(prefetch).lower()}", "--stats-out", str(stats)]
        proc = subprocess.run(cmd, capture_output=True, timeout=600)
        if proc.returncode != 0:
            sys.exit(f"expert_cache_sweep: {' '.join(cmd)} failed: {proc.stderr.decode().strip()}")
        return json.loads(stats.read_text())


def row(policy, prefetch, per_layer, stats):
    t = stats["totals"]
    accesses = t["hits"] + t["misses"]
    return {"policy": policy, "prefetch": "on" if prefetch else "off", "experts_per_layer": per_layer,
            "slots": t["capacity_experts"], "accesses": accesses, "hits": t["hits"], "misses": t["misses"],
            "hit_rate": round(t["hits"] / accesses, 4), "evictions": t["evictions"],
            "prefetch_issued": t["prefetch_issued"], "prefetch_used": t["prefetch_used"],
            "prefetch_wasted": t["prefetch_wasted"], "bytes_transferred": t["bytes_transferred"],
            "load_seconds": round(t["load_seconds"], 6), "stall_seconds": round(t["stall_seconds"], 6)}


def plot(rows, num_experts, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    colors = {"lru": "tab:blue", "lfu": "tab:orange", "load-aware": "tab:green"}
    for policy in POLICIES:
        for prefetch, style in (("on", "-"), ("off", "--")):
            pts = sorted((r["experts_per_layer"], r["hit_rate"]) for r in rows
                         if r["policy"] == policy and r["prefetch"] == prefetch)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style, marker="o", color=colors[policy],
                    label=f"{policy}, prefetch {prefetch}")
    ax.set_xlabel(f"cache size (resident experts per MoE layer, of {num_experts})")
    ax.set_ylabel("hit rate (hits / expert accesses)")
    ax.set_title("fortune-moe hot-expert cache: hit rate vs cache size")
    ax.set_xticks(range(1, num_experts + 1))
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build", type=pathlib.Path, default=pathlib.Path(os.environ.get("MOED_BUILD_DIR", ROOT / "build")))
    p.add_argument("--model", type=pathlib.Path, default=ROOT / "models" / "fortune-moe")
    p.add_argument("--prompts", type=pathlib.Path, default=ROOT / "bench" / "prompts" / "fortune_prompts.txt")
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--out", type=pathlib.Path, default=ROOT / "bench" / "expert_cache_hit_rate")
    args = p.parse_args()
    moe_run = find_moe_run(args.build)

    # A cache-off run gives the model's shape: MoE layers and experts per layer.
    base = run_stats(args, moe_run, 0, "lru", False)
    moe_layers = sum(1 for l in base["layers"] if l["moe"])
    num_experts = len(base["layers"][0]["routed"])
    configs = [(policy, prefetch, per_layer) for policy in POLICIES for prefetch in (True, False)
               for per_layer in range(1, num_experts + 1)]
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda c: run_stats(args, moe_run, c[2] * moe_layers, c[0], c[1]), configs))
    rows = [row(c[0], c[1], c[2], s) for c, s in zip(configs, results)]

    csv_path = args.out.with_suffix(".csv")
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(rows)
    plot(rows, num_experts, args.out.with_suffix(".png"))

    routed = [sum(l["routed"]) for l in base["layers"] if l["moe"]]
    print(f"model {args.model.name}: {moe_layers} MoE layers x {num_experts} experts; {base['steps']} steps; "
          f"routed assignments per layer {routed}")
    print("\n| experts/layer | " + " | ".join(f"{p} {'+pf' if pf == 'on' else ''}".strip()
                                              for p in POLICIES for pf in ("on", "off")) + " |")
    print("|---" * (1 + 2 * len(POLICIES)) + "|")
    for per_layer in range(1, num_experts + 1):
        cells = []
        for policy in POLICIES:
            for pf in ("on", "off"):
                r = next(r for r in rows if r["policy"] == policy and r["prefetch"] == pf
                         and r["experts_per_layer"] == per_layer)
                cells.append(f"{r['hit_rate']:.3f}")
        print(f"| {per_layer} | " + " | ".join(cells) + " |")
    print("\n| policy | prefetch | experts/layer | prefetch issued | used | wasted |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        if r["prefetch"] == "on" and r["experts_per_layer"] in (2, 4, 6):
            print(f"| {r['policy']} | on | {r['experts_per_layer']} | {r['prefetch_issued']} | {r['prefetch_used']} "
                  f"| {r['prefetch_wasted']} |")
    print(f"\nwrote {csv_path} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
