#!/usr/bin/env python3
"""The summary of one bench/cuda/on_device.sh run, and the rehearsal's checks of it. Standard library only.

  device_summary.py --work DIR --out OUT --mode device|rehearse --elapsed S
      reads DIR/steps.jsonl (one line per step) and DIR/figures/*.json, writes OUT/summary.json and OUT/summary.md
      (a table for bench/RESULTS.md); exit 1 when a correctness step did not pass (a step not run counts as
      not passing on the device; in a rehearsal, GPU-only steps are "not run: no device" and do not count).
  device_summary.py --check OUT --expect-exit RC
      the rehearsal's self-check: the output files (and no more than 6), every step present, each step within
      its time budget, device budgets fitting 8 minutes, and RC agreeing with the summary.
"""
import argparse
import json
import os
import sys

STEP_NAMES = ["device", "gpu_tests", "memcheck", "golden_parity", "fortune_text", "moe_layer_bench", "step_bench",
              "serving", "expert_cache"]
DEVICE_BUDGET_S = 480  # the whole run must fit 8 minutes on an H100 (the call is limited to 540 s)
OUT_FILES = ["summary.json", "summary.md", "logs.tar.xz"]


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def gtest_figures(j):
    if not j:
        return {}
    failed = [f"{s['name']}.{t['name']}" for s in j.get("testsuites", []) for t in s.get("testsuite", [])
              if t.get("failures")]
    skipped = sum(1 for s in j.get("testsuites", []) for t in s.get("testsuite", [])
                  if t.get("result") == "SKIPPED" or t.get("status") == "NOTRUN")
    return {"tests": j.get("tests"), "failures": j.get("failures"), "skipped": skipped, "failed": failed[:50]}


def serving_figures(figures):
    rows = {}
    for key in ["c1", "c16", "c64", "prefill"]:
        j = load(os.path.join(figures, f"serving_{key}.json"))
        if j is None:
            rows[key] = {"error": "no moe-bench output"}
            continue
        rows[key] = {"ok": j["requests"]["ok"], "failed": j["requests"]["failed"], "errors": j.get("errors"),
                     "output_tokens_per_s": j.get("output_tokens_per_s"),
                     "ttft_ms_p50": (j.get("ttft_ms") or {}).get("p50"),
                     "itl_ms_p50": (j.get("itl_ms") or {}).get("p50"),
                     "prompt_len": j["config"]["prompt_len"], "output_len": j["config"]["output_len"]}
    return rows


def figures_of(step, figures):
    f = lambda name: load(os.path.join(figures, name))  # noqa: E731
    if step == "device":
        return f("device.json") or {}
    if step == "gpu_tests":
        return gtest_figures(f("gpu_tests.json"))
    if step == "golden_parity":
        j = f("golden_parity.json") or {}
        return {m: {"pass": r["pass"], "max_abs_err": r["max_abs_err"], "refused": r.get("refused")}
                for m, r in j.get("models", {}).items()}
    if step == "fortune_text":
        j = f("fortune_text.json") or {}
        return {"cases": len(j.get("cases", [])), "pass": j.get("pass")}
    if step in ("moe_layer_bench", "step_bench"):
        j = f(f"{step}.json") or {}
        return {"floor": j.get("floor"), "rows": j.get("rows", []), "error": j.get("error")}
    if step == "serving":
        return serving_figures(figures)
    if step == "expert_cache":
        j = f("expert_cache.json") or {}
        fl = j.get("floor") or {}
        return {"routing": j.get("routing"), "shape": j.get("shape"), "fraction": j.get("fraction"),
                "h2d_bytes_per_s": fl.get("h2d_bytes_per_s"), "copy_bytes_per_s": fl.get("copy_bytes_per_s"),
                "free_bytes": fl.get("free_bytes"), "rows": j.get("rows", []), "error": j.get("error")}
    return {}


def step_passed(s):
    if s["status"] != "pass":
        return False
    if s["step"] == "serving":  # every request served, none failed
        return all(r.get("failed", 1) == 0 and "error" not in r for r in s["figures"].values())
    return True


# Issue 14's H100 targets, read off the benches' rows of the new paths: (name, step, bench, model, size key, size,
# figure, comparison, target). Performance figures: reported, never a pass/fail of the run.
TARGETS = [
    ("Mixtral MoE layer, 1 token, of HBM floor", "moe_layer_bench", "moe_layer", "mixtral-8x7b", "tokens", 1,
     "fraction", ">=", 0.70),
    ("Mixtral MoE layer, 64 tokens, of HBM floor", "moe_layer_bench", "moe_layer", "mixtral-8x7b", "tokens", 64,
     "fraction", ">=", 0.75),
    ("Mixtral MoE layer, 16384 tokens, of FLOP floor", "moe_layer_bench", "moe_layer", "mixtral-8x7b", "tokens", 16384,
     "fraction", ">=", 0.60),
    ("OLMoE batch-1 decode, of bandwidth floor", "step_bench", "backend_decode", "olmoe-1b-7b", "batch", 1,
     "fraction", ">=", 0.50),
    ("Qwen3-30B-A3B batch-1 decode, of bandwidth floor", "step_bench", "backend_decode", "qwen3-30b-a3b", "batch", 1,
     "fraction", ">=", 0.50),
    ("Qwen3-30B-A3B batch 64, output tok/s (backend)", "step_bench", "backend_decode", "qwen3-30b-a3b", "batch", 64,
     "tok_per_s", ">=", 1500),
    ("Qwen3-30B-A3B 2048-token prefill, ms", "step_bench", "backend_prefill", "qwen3-30b-a3b", "tokens", 2048,
     "time_ms", "<=", 25),
]
NEW_PATHS = ("grouped", "new")


def targets(steps):
    by_step = {s["step"]: (s.get("figures") or {}).get("rows", []) for s in steps if isinstance(s.get("figures"), dict)}
    out = []
    for name, step, bench, model, key, size, figure, op, target in TARGETS:
        rows = [r for r in by_step.get(step, []) if r.get("bench") == bench and r.get("model") == model
                and r.get(key) == size and r.get("path", "new") in NEW_PATHS and figure in r]
        measured = rows[0][figure] if rows else None
        met = None if measured is None else (measured >= target if op == ">=" else measured <= target)
        out.append({"target": name, "measured": measured, "goal": f"{op} {target}", "met": met})
    return out


def summarize(a):
    steps = [json.loads(line) for line in open(os.path.join(a.work, "steps.jsonl")) if line.strip()]
    figures = os.path.join(a.work, "figures")
    for s in steps:
        s["figures"] = figures_of(s["step"], figures) if s["status"] != "not run" else {}
        s["passed"] = step_passed(s)
    counted = [s for s in steps if s["kind"] == "correctness" and not (a.mode == "rehearse" and s["status"] == "not run")]
    ok = all(s["passed"] for s in counted) and len(steps) == len(STEP_NAMES)
    summary = {"mode": a.mode, "pass": ok, "elapsed_s": a.elapsed, "bundle": load(os.path.join(figures, "manifest.json")),
               "device": (next((s["figures"] for s in steps if s["step"] == "device"), {}) or None), "steps": steps,
               "targets": targets(steps)}
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    with open(os.path.join(a.out, "summary.md"), "w") as f:
        f.write(markdown(summary))
    return 0 if ok else 1


def fmt(x, spec="{:.3g}"):
    return "–" if x is None else spec.format(x)


def markdown(s):
    dev = s.get("device") or {}
    b = s.get("bundle") or {}
    out = [f"### Device run ({s['mode']}): {'PASS' if s['pass'] else 'FAIL'}", "",
           f"device: {dev.get('name', 'none')}, driver {dev.get('driver', '–')} (CUDA {dev.get('driver_cuda', '–')}); "
           f"bundle {b.get('revision', '?')} packed {b.get('packed', '?')} with {b.get('nvcc', '?')}; "
           f"{s['elapsed_s']} s in all", "",
           "| step | kind | status | seconds / budget | figures |", "|---|---|---|---|---|"]
    for st in s["steps"]:
        status = st["status"] + (f": {st['reason']}" if st.get("reason") else "")
        if st["status"] == "pass" and not st["passed"]:
            status = "fail (figures)"
        out.append(f"| {st['step']} | {st['kind']} | {status} | {st['seconds']} / {st['budget_s']} | "
                   f"{brief(st)} |")
    if any(t["measured"] is not None for t in s.get("targets", [])):
        out += ["", "#### issue 14 targets (new paths)", "", "| target | measured | goal | met |", "|---|---|---|---|"]
        for t in s["targets"]:
            met = "–" if t["met"] is None else ("yes" if t["met"] else "no")
            out.append(f"| {t['target']} | {fmt(t['measured'])} | {t['goal']} | {met} |")
    for st in s["steps"]:
        if st["step"] in ("moe_layer_bench", "step_bench") and st["figures"].get("rows"):
            out += ["", f"#### {st['step']}", "",
                    "| model | size | path | time ms | floor ms | of floor | vs reference |", "|---|---|---|---|---|---|---|"]
            rows = st["figures"]["rows"]
            for r in rows:
                size = r.get("tokens") if "tokens" in r else f"batch {r.get('batch')}"
                ref = reference_row(rows, r)
                speedup = f"{ref['time_ms'] / r['time_ms']:.2f}×" if ref and ref is not r and r["time_ms"] else "–"
                out.append(f"| {r['model']} ({r['bench']}) | {size} | {r.get('path', '–')} | {fmt(r['time_ms'])} | "
                           f"{fmt(r['floor_ms'])} | {fmt(100 * r['fraction'], '{:.1f}%')} | {speedup} |")
        if st["step"] == "expert_cache" and st["figures"].get("rows"):
            f = st["figures"]
            out += ["", "#### expert_cache (moed, partial hot-expert cache)", "",
                    f"{f.get('shape')}; routing: {f.get('routing')}; pinned H2D "
                    f"{fmt(f['h2d_bytes_per_s'] / 1e9) if f.get('h2d_bytes_per_s') else '–'} GB/s", "",
                    "| config | c | output tok/s | floor tok/s | of floor | hit rate | demand loads | prefetch used/wasted "
                    "| stall s |", "|---|---|---|---|---|---|---|---|---|"]
            for r in f["rows"]:
                out.append(f"| {r['config']} | {r['concurrency']} | {fmt(r.get('output_tokens_per_s'))} | "
                           f"{fmt(r.get('floor_tokens_per_s'))} | {fmt(r.get('of_floor'))} | {fmt(r.get('hit_rate'))} | "
                           f"{fmt(r.get('demand_loads'))} | {fmt(r.get('prefetch_used'))}/{fmt(r.get('prefetch_wasted'))} | "
                           f"{fmt(r.get('stall_s'))} |")
        if st["step"] == "serving" and st["figures"]:
            out += ["", "#### serving (moe-bench against moed)", "",
                    "| load | ok/failed | output tok/s | TTFT p50 ms | ITL p50 ms |", "|---|---|---|---|---|"]
            for k, r in st["figures"].items():
                out.append(f"| {k} | {r.get('ok', '–')}/{r.get('failed', '–')} | {fmt(r.get('output_tokens_per_s'))} | "
                           f"{fmt(r.get('ttft_ms_p50'))} | {fmt(r.get('itl_ms_p50'))} |")
    return "\n".join(out) + "\n"


REFERENCE_PATHS = ("per-expert", "reference")


def reference_row(rows, r):
    """The row of the reference path (per-expert MoE / reference backend) at r's bench, model and size, if any."""
    for q in rows:
        if (q.get("path") in REFERENCE_PATHS and q["bench"] == r["bench"] and q["model"] == r["model"]
                and q.get("tokens") == r.get("tokens") and q.get("batch") == r.get("batch")):
            return q
    return None


def brief(st):
    f = st["figures"]
    if st["step"] == "gpu_tests" and f:
        return f"{f.get('tests')} tests, {f.get('failures')} failed, {f.get('skipped')} skipped"
    if st["step"] == "golden_parity" and f:
        return ", ".join(f"{m} refused" if r.get("refused") else f"{m} {fmt(r['max_abs_err'])}{'' if r['pass'] else ' FAIL'}"
                         for m, r in f.items())
    if st["step"] == "expert_cache" and f:
        if f.get("error"):
            return "error: " + str(f["error"])[:120]
        cached = [r for r in f.get("rows", []) if r.get("config") != "resident"]
        return f"fraction {f.get('fraction')}; " + ", ".join(
            f"{r['config']} c={r['concurrency']}: hit rate {fmt(r.get('hit_rate'))}"
            + (f", {100 * r['of_floor']:.0f}% of floor" if r.get("of_floor") is not None else "") for r in cached)
    if st["step"] == "device" and f:
        return f"{f.get('name')} cc {f.get('compute_cap')}"
    if st["step"] in ("moe_layer_bench", "step_bench") and f.get("floor"):
        fl = f["floor"]
        return f"floor: copy {fl['copy_bytes_per_s'] / 1e12:.2f} TB/s, bf16 {fl['bf16_flops_per_s'] / 1e12:.0f} TFLOP/s"
    return ""


def check(a):
    problems = []
    present = sorted(os.listdir(a.check))
    for name in OUT_FILES:
        if name not in present:
            problems.append(f"missing {name} in {a.check}")
    if len(present) > 6:
        problems.append(f"{len(present)} files in {a.check}; a device run returns at most 8 and the script may write 6")
    s = load(os.path.join(a.check, "summary.json"))
    if s is None:
        problems.append("summary.json does not parse")
    else:
        names = [st["step"] for st in s["steps"]]
        if names != STEP_NAMES:
            problems.append(f"steps {names}, expected {STEP_NAMES}")
        for st in s["steps"]:
            if st["seconds"] > st["budget_s"]:
                problems.append(f"step {st['step']} took {st['seconds']} s, over its budget of {st['budget_s']} s")
            if st["status"] not in ("pass", "not run"):
                problems.append(f"step {st['step']}: {st['status']} (see logs.tar.xz: logs/{st['step']}.log)")
        if (a.expect_exit == 0) != bool(s["pass"]):
            problems.append(f"exit status {a.expect_exit} disagrees with summary pass={s['pass']}")
        if not s["pass"]:
            problems.append("the rehearsal did not pass")
    budgets = device_budgets()
    if sum(budgets) > DEVICE_BUDGET_S:
        problems.append(f"device step budgets add up to {sum(budgets)} s, over {DEVICE_BUDGET_S} s")
    for p in problems:
        print("rehearsal check: " + p, file=sys.stderr)
    print(f"rehearsal check: {'ok' if not problems else 'FAILED'} ({len(present)} files, device budgets "
          f"{sum(budgets)} s of {DEVICE_BUDGET_S} s)")
    return 1 if problems else 0


def device_budgets():
    """The device budgets declared in on_device.sh's STEPS table."""
    here = os.path.dirname(os.path.abspath(__file__))
    budgets = []
    for line in open(os.path.join(here, "on_device.sh")):
        line = line.strip()
        if line.startswith('"') and line.count("|") == 4:
            budgets.append(int(line.strip('"').split("|")[2]))
    return budgets


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work")
    ap.add_argument("--out")
    ap.add_argument("--mode", choices=["device", "rehearse"])
    ap.add_argument("--elapsed", type=int, default=0)
    ap.add_argument("--check")
    ap.add_argument("--expect-exit", type=int, default=0)
    a = ap.parse_args()
    if a.check:
        return check(a)
    if not (a.work and a.out and a.mode):
        ap.error("--work, --out and --mode are required without --check")
    return summarize(a)


if __name__ == "__main__":
    sys.exit(main())
