#!/usr/bin/env python3
"""Golden parity through moe-run on one backend: every transformers fixture (tests/fixtures/*/golden.json) and
fortune-moe (models/fortune-moe/golden.json). Standard library only: it runs on the bare GPU machine too.

For each case: the last-prompt-position logits against transformers' (max |err|), and the greedy tokens up to the
first step whose golden margin is too small to decide. Bounds (../shared/README.md):
  cpu  (fp32, --cpu-kernels fast-fp32): max |err| <= 5e-5; greedy equal while the golden margin > 1e-3. (The CPU's
        default kernels round the routed experts' inputs to bf16; moed_golden_tests hold them to their own bounds.)
  cuda (bf16): max |err| <= 5e-2 * max|golden|; argmax equal when its margin > 0.05; greedy equal while margin > 0.05.

usage: golden_parity.py --moe-run CMD --backend cpu|cuda --json OUT [--root REPO]
  CMD is how to start moe-run, split on spaces (e.g. ".devbundle/run moe-run" or "build/moe-run").
A model the backend refuses at load (moe-run exit status 2 with a message naming why, e.g. a family or attention
kind this backend does not implement yet) is reported as "refused" with that message, not as a failure: refusing
by name is the contract; computing wrongly is the failure.
Exit status 0 when every case of every model that loads passes, 1 otherwise; OUT gets per-model figures either way.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

BOUNDS = {
    "cpu": {"abs": 5e-5, "rel": 0.0, "margin": 1e-3},
    "cuda": {"abs": 0.0, "rel": 5e-2, "margin": 5e-2},
}


class Refused(Exception):
    """moe-run refused the model (exit status 2): the message says why."""


def models(root):
    fixtures = os.path.join(root, "tests", "fixtures")
    out = [os.path.join(fixtures, d) for d in sorted(os.listdir(fixtures))
           if os.path.isfile(os.path.join(fixtures, d, "golden.json"))
           and os.path.isfile(os.path.join(fixtures, d, "config.json"))]
    out.append(os.path.join(root, "models", "fortune-moe"))
    return out


def run_case(moe_run, model, backend, ids, max_tokens, logits_path):
    cmd = moe_run + ["--model", model, "--backend", backend, "--prompt-ids", ",".join(map(str, ids)),
                     "--max-tokens", str(max_tokens), "--temperature", "0", "--json", "--logits-out", logits_path]
    if backend == "cpu":
        cmd += ["--cpu-kernels", "fast-fp32"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if p.returncode == 2:
        raise Refused(p.stderr.strip()[-500:])
    if p.returncode != 0:
        raise RuntimeError(f"moe-run exit {p.returncode}: {p.stderr.strip()[-500:]}")
    with open(logits_path) as f:
        logits = json.load(f)
    return json.loads(p.stdout.strip().splitlines()[-1])["output_ids"], logits


def golden_greedy(case):
    """(tokens, margins): margins None when the golden has none (fortune-moe)."""
    if "greedy" in case:
        return [g["token"] for g in case["greedy"]], [g["margin"] for g in case["greedy"]]
    return case["greedy_ids"], None


def check_case(moe_run, model, backend, case, tmp):
    b = BOUNDS[backend]
    want_tokens, margins = golden_greedy(case)
    got_tokens, logits = run_case(moe_run, model, backend, case["input_ids"], len(want_tokens),
                                  os.path.join(tmp, "logits.json"))
    golden = case["last_logits"]
    if len(logits) != len(golden):
        return {"pass": False, "error": f"{len(logits)} logits, golden has {len(golden)}"}
    err = max(abs(a - g) for a, g in zip(logits, golden))
    bound = b["abs"] + b["rel"] * max(abs(g) for g in golden)
    order = sorted(range(len(golden)), key=lambda i: -golden[i])
    top_margin = golden[order[0]] - golden[order[1]]
    argmax_ok = top_margin <= b["margin"] or max(range(len(logits)), key=lambda i: logits[i]) == order[0]
    # Greedy tokens must agree up to the first step whose golden margin is too small to decide.
    decided = len(want_tokens)
    if margins is not None:
        decided = next((i for i, m in enumerate(margins) if m <= b["margin"]), len(want_tokens))
    elif backend != "cpu":
        decided = 0  # no margins recorded: only the fp32 path is held to the whole sequence
    first_diff = next((i for i in range(min(len(got_tokens), len(want_tokens))) if got_tokens[i] != want_tokens[i]),
                      None)
    greedy_ok = (first_diff is None and len(got_tokens) >= decided) or (first_diff is not None and first_diff >= decided)
    ok = err <= bound and argmax_ok and greedy_ok and all(x == x for x in logits)
    return {"pass": ok, "max_abs_err": err, "bound": bound, "argmax_ok": argmax_ok, "greedy_ok": greedy_ok,
            "greedy_checked": decided, "first_diff": first_diff}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--moe-run", required=True)
    ap.add_argument("--backend", choices=sorted(BOUNDS), required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--root", default=".")
    a = ap.parse_args()
    moe_run = a.moe_run.split()
    report = {"backend": a.backend, "models": {}}
    all_ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for model in models(a.root):
            name = os.path.basename(model)
            with open(os.path.join(model, "golden.json")) as f:
                cases = json.load(f)["cases"]
            rows = []
            try:
                for case in cases:
                    try:
                        rows.append(check_case(moe_run, model, a.backend, case, tmp))
                    except Refused:
                        if rows:  # refused after loading once: not a refusal of the model, a failure
                            raise RuntimeError("moe-run refused a later case of a model it had loaded")
                        raise
                    except Exception as e:  # one broken case must not hide the others
                        rows.append({"pass": False, "error": str(e)})
            except Refused as e:
                report["models"][name] = {"pass": True, "refused": str(e), "cases": 0, "max_abs_err": None}
                print(f"{name:24s} refused: {e}", flush=True)
                continue
            ok = all(r["pass"] for r in rows)
            errs = [r["max_abs_err"] for r in rows if "max_abs_err" in r]
            report["models"][name] = {"pass": ok, "cases": len(rows), "max_abs_err": max(errs) if errs else None,
                                      "failures": [dict(r, case=i) for i, r in enumerate(rows) if not r["pass"]]}
            all_ok &= ok
            print(f"{name:24s} {'ok  ' if ok else 'FAIL'} cases {len(rows)}  max|err| "
                  f"{report['models'][name]['max_abs_err']}", flush=True)
    report["pass"] = all_ok
    with open(a.json, "w") as f:
        json.dump(report, f, indent=1)
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
