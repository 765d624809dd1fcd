#!/usr/bin/env python3
"""moed's CPU kernels (--moed-kernels, default fast and reference) and llama.cpp on the same models, cores and
thread count, interleaved.

Each round runs, for every model: cpu-decode-bench --cpu-kernels fast, then reference (batch-1 decode and one
512-token prefill, each with its floor measured in the same run), then llama-bench on the model's GGUF (pp512 and
tg64) when given. The load average is read before every run: the machine may be shared. Prints one JSON object
(every run, then the medians per engine and model) and a Markdown table.

--cpu-time (use with --threads 1): also rates each engine by tokens per CPU-second of its own process, which other
processes on a shared machine do not inflate. moed reports its CPU time per step; for llama.cpp it is the
difference of the children's CPU time between two llama-bench runs that differ only in token count
(pp512 − pp32, tg64 − tg8), so model loading and warm-up cancel.

--llama-server PATH: also the serving rows (bench/peer/serve.py): moe-bench against moed and an equivalent client
against llama-server, closed loops at each --serve-concurrency level, interleaved, on the same prompts.

  compare.py --build build --model fortune=models/fortune-moe:/tmp/fortune.gguf \\
             --model m224=/tmp/m224/hf:/tmp/m224/model-bf16.gguf --llama-bench PATH --rounds 3
"""
import argparse
import json
import pathlib
import resource
import statistics
import subprocess
import sys

import serve


def loadavg():
    return float(pathlib.Path("/proc/loadavg").read_text().split()[0])


def run_json(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout)


def moed_run(build, model, kernels, threads, prefill):
    j = run_json(["taskset", "-c", "0-1", str(build / "cpu-decode-bench"), "--model", model, "--cpu-kernels",
                  kernels, "--threads", str(threads), "--batches", "1", "--steps", "32", "--reps", "3",
                  "--prefill", str(prefill)])
    r, p = j["results"][0], j["prefill"]
    return {"decode_tok_s": r["decode_tokens_per_s"], "decode_floor_tok_s": r["floor_tokens_per_s"],
            "prefill_tok_s": p["tokens_per_s"], "prefill_floor_tok_s": p["floor_tokens_per_s"],
            "decode_tok_per_cpu_s": r["decode_tokens_per_cpu_s"], "prefill_tok_per_cpu_s": p["tokens_per_cpu_s"],
            "decode_floor_tok_per_cpu_s": r["floor_tokens_per_cpu_s"],
            "prefill_floor_tok_per_cpu_s": p["floor_tokens_per_cpu_s"],
            "memcpy_gb_s": j["memcpy_bytes_per_s"] / 1e9, "fma_gmacs": j["peak_fp32_fma_macs_per_s"] / 1e9,
            "isa": j["isa"]}


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def llama_bench(binary, gguf, threads, p, n, reps):
    """(tokens/s llama-bench reports, CPU seconds the run used)."""
    c0 = children_cpu()
    j = run_json(["taskset", "-c", "0-1", str(binary), "-m", gguf, "-t", str(threads), "-p", str(p), "-n", str(n),
                  "-r", str(reps), "-o", "json"])
    return j[0]["avg_ts"], children_cpu() - c0


def llama_run(binary, gguf, threads, prefill, cpu_time):
    reps = 3
    pp, pp_cpu = llama_bench(binary, gguf, threads, prefill, 0, reps)
    tg, tg_cpu = llama_bench(binary, gguf, threads, 0, 64, reps)
    out = {"prefill_tok_s": pp, "decode_tok_s": tg}
    if cpu_time:
        # Each llama-bench test runs once to warm up, then `reps` times (the tg warm-up is one token).
        _, pp_small_cpu = llama_bench(binary, gguf, threads, 32, 0, reps)
        _, tg_small_cpu = llama_bench(binary, gguf, threads, 0, 8, reps)
        out["prefill_tok_per_cpu_s"] = (reps + 1) * (prefill - 32) / (pp_cpu - pp_small_cpu)
        out["decode_tok_per_cpu_s"] = reps * (64 - 8) / (tg_cpu - tg_small_cpu)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", type=pathlib.Path, default=pathlib.Path("build"))
    ap.add_argument("--model", action="append", required=True, help="LABEL=MOED_MODEL[:GGUF]")
    ap.add_argument("--llama-bench", type=pathlib.Path)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prefill", type=int, default=512)
    ap.add_argument("--cpu-time", action="store_true", help="also rate by tokens per CPU-second (see above)")
    ap.add_argument("--llama-server", type=pathlib.Path, help="also run the serving rows against this llama-server")
    ap.add_argument("--serve-concurrency", default="1,8,32")
    ap.add_argument("--serve-prompt-len", type=int, default=32)
    ap.add_argument("--serve-output-len", type=int, default=64)
    ap.add_argument("--serve-min-requests", type=int, default=8, help="requests per level: max(this, 3 × concurrency)")
    ap.add_argument("--skip-kernels", action="store_true", help="only the serving rows")
    ap.add_argument("--serve-kernels", default="fast", help="moed's --cpu-kernels in the serving rows")
    ap.add_argument("--moed-kernels", default="fast,reference",
                    help="moed's --cpu-kernels values for the kernel rows, comma-separated (fast, fast-fp32, reference)")
    a = ap.parse_args()
    models = []
    for m in a.model:
        label, rest = m.split("=", 1)
        path, _, gguf = rest.partition(":")
        models.append((label, path, gguf or None))
    runs, serving = [], []
    kernel_engines = [f"moed-{k}" for k in a.moed_kernels.split(",")] + ["llama.cpp"]
    for rnd in range(a.rounds):
        for label, path, gguf in models:
            for engine in () if a.skip_kernels else kernel_engines:
                if engine == "llama.cpp" and (a.llama_bench is None or gguf is None):
                    continue
                la = loadavg()
                if engine == "llama.cpp":
                    r = llama_run(a.llama_bench, gguf, a.threads, a.prefill, a.cpu_time)
                else:
                    r = moed_run(a.build, path, engine[len("moed-"):], a.threads, a.prefill)
                r.update({"round": rnd, "model": label, "engine": engine, "loadavg_before": la})
                runs.append(r)
                print(json.dumps(r), flush=True, file=sys.stderr)
            if a.llama_server is not None and gguf is not None:
                levels = [int(c) for c in a.serve_concurrency.split(",")]
                for r in serve.serve_round(a.build, a.llama_server, path, gguf, serve.vocab_of(path), a.threads,
                                           levels, a.serve_prompt_len, a.serve_output_len,
                                           a.serve_min_requests, a.serve_kernels):
                    r.update({"round": rnd, "model": label, "loadavg_before": loadavg()})
                    serving.append(r)
                    print(json.dumps(r), flush=True, file=sys.stderr)
    medians = []
    for label, _, _ in models:
        for engine in kernel_engines:
            rs = [r for r in runs if r["model"] == label and r["engine"] == engine]
            if not rs:
                continue
            med = {"model": label, "engine": engine, "rounds": len(rs)}
            for key in rs[0]:
                if key not in ("round", "model", "engine", "isa") and isinstance(rs[0][key], (int, float)):
                    med[key] = statistics.median(r[key] for r in rs)
            med["loadavg_range"] = [min(r["loadavg_before"] for r in rs), max(r["loadavg_before"] for r in rs)]
            medians.append(med)
    serve_medians = []
    serve_engine = f"moed-{a.serve_kernels}"
    for label, _, _ in models:
        for c in sorted({r["concurrency"] for r in serving}):
            row = {"model": label, "concurrency": c}
            for engine in (serve_engine, "llama.cpp"):
                rs = [r for r in serving if r["model"] == label and r["engine"] == engine and r["concurrency"] == c]
                if rs:
                    row[engine] = {k: statistics.median(r[k] for r in rs)
                                   for k in ("output_tok_s", "output_tok_per_cpu_s", "server_cpu_s", "wall_s")}
                    row[engine]["rounds"] = len(rs)
                    row["loadavg_range"] = [min(r["loadavg_before"] for r in rs), max(r["loadavg_before"] for r in rs)]
            if serve_engine in row and "llama.cpp" in row:
                serve_medians.append(row)
    print(json.dumps({"runs": runs, "medians": medians, "serving": serving, "serving_medians": serve_medians},
                     indent=1))
    if medians:
        print(f"\n| model | engine | decode b1 tok/s (floor) | prefill {a.prefill} tok/s (floor) | "
              "decode tok per CPU-s (floor) | prefill tok per CPU-s (floor) | load avg |")
        print("|---|---|---|---|---|---|---|")
        for m in medians:
            fl = lambda k: f" ({m[k]:.0f})" if k in m else ""
            cpu = lambda k: f"{m[k]:.1f}" if k in m else "–"
            print(f"| {m['model']} | {m['engine']} | {m.get('decode_tok_s', 0):.1f}{fl('decode_floor_tok_s')} | "
                  f"{m.get('prefill_tok_s', 0):.0f}{fl('prefill_floor_tok_s')} | "
                  f"{cpu('decode_tok_per_cpu_s')}{fl('decode_floor_tok_per_cpu_s')} | "
                  f"{cpu('prefill_tok_per_cpu_s')}{fl('prefill_floor_tok_per_cpu_s')} | "
                  f"{m['loadavg_range'][0]:.1f}–{m['loadavg_range'][1]:.1f} |")
    if serve_medians:
        print("\n| model | concurrency | moed tok/s | llama.cpp tok/s | moed / llama (wall) | moed tok per CPU-s | "
              "llama.cpp tok per CPU-s | moed / llama (CPU) | load avg |")
        print("|---|---|---|---|---|---|---|---|---|")
        for m in serve_medians:
            f, l = m[serve_engine], m["llama.cpp"]
            print(f"| {m['model']} | {m['concurrency']} | {f['output_tok_s']:.0f} | {l['output_tok_s']:.0f} | "
                  f"{f['output_tok_s'] / l['output_tok_s']:.2f} | {f['output_tok_per_cpu_s']:.0f} | "
                  f"{l['output_tok_per_cpu_s']:.0f} | {f['output_tok_per_cpu_s'] / l['output_tok_per_cpu_s']:.2f} | "
                  f"{m['loadavg_range'][0]:.1f}–{m['loadavg_range'][1]:.1f} |")


if __name__ == "__main__":
    main()
