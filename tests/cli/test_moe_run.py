"""moe-run end to end: golden greedy text, --json schema, --logits-out, --max-tokens 0, and exit code 2 with a
one-line message for bad arguments and a bad model directory."""
import json
import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "fortune-moe"
GOLDEN = json.loads((MODEL / "golden.json").read_text())
PROMPT = "Never trust a computer"


def _binary():
    build = pathlib.Path(os.environ.get("MOED_BUILD_DIR", ROOT / "build"))
    for candidate in (build / "moe-run", build / "client" / "moe-run"):
        if candidate.exists():
            return candidate
    pytest.fail(f"moe-run not found under {build} (set MOED_BUILD_DIR to the build directory)")


def run(*args, check=True):
    proc = subprocess.run([str(_binary()), *map(str, args)], capture_output=True, timeout=120)
    if check:
        assert proc.returncode == 0, proc.stderr.decode()
    return proc


def golden_case(prompt):
    return next(c for c in GOLDEN["cases"] if c["prompt"] == prompt)


def test_greedy_text_matches_golden():
    out = run("--model", MODEL, "--prompt", PROMPT, "--max-tokens", 32, "--temperature", 0, "--backend", "cpu")
    assert out.stdout.decode() == golden_case(PROMPT)["greedy_text"] + "\n"


def test_json_schema_and_ids():
    case = golden_case(PROMPT)
    out = run("--model", MODEL, "--prompt", PROMPT, "--max-tokens", 32, "--temperature", 0, "--json")
    lines = out.stdout.decode().splitlines()
    assert len(lines) == 1
    obj = json.loads(lines[0])
    assert set(obj) == {"prompt_ids", "output_ids", "text"}
    assert obj["prompt_ids"] == case["input_ids"]
    assert obj["output_ids"] == case["greedy_ids"]
    assert obj["text"] == case["greedy_text"]


def test_prompt_ids_and_sampling_are_deterministic_by_seed():
    ids = ",".join(map(str, golden_case(PROMPT)["input_ids"]))
    args = ["--model", MODEL, "--prompt-ids", ids, "--max-tokens", 16, "--temperature", 0.9, "--top-p", 0.9,
            "--top-k", 50, "--json"]
    a = json.loads(run(*args, "--seed", 7).stdout)
    b = json.loads(run(*args, "--seed", 7).stdout)
    c = json.loads(run(*args, "--seed", 8).stdout)
    assert a == b
    assert a["prompt_ids"] == golden_case(PROMPT)["input_ids"]
    assert 1 <= len(a["output_ids"]) <= 16
    assert a["output_ids"] != c["output_ids"]


def test_logits_out_matches_golden(tmp_path):
    path = tmp_path / "logits.json"
    case = golden_case("Linux is")
    # fp32 activations (the default fast rounds the routed experts' inputs to bf16: test_cpu_kernels_* below).
    out = run("--model", MODEL, "--prompt", "Linux is", "--max-tokens", 0, "--logits-out", path, "--json",
              "--cpu-kernels", "fast-fp32")
    obj = json.loads(out.stdout)
    assert obj["output_ids"] == [] and obj["text"] == ""
    logits = json.loads(path.read_text())
    assert len(logits) == len(case["last_logits"]) == 4096
    # fp32 CPU against transformers' fp32: measured 1.1e-5 on fortune-moe's trained logits; 5e-5 leaves ~4x margin.
    assert max(abs(a - b) for a, b in zip(logits, case["last_logits"])) <= 5e-5


def test_cpu_kernels_fast_and_reference_agree(tmp_path):
    """Every CPU kernel set gives the golden greedy ids, and logits within its measured bound."""
    case = golden_case(PROMPT)
    logits = {}
    for kernels in ("fast", "fast-fp32", "reference"):
        path = tmp_path / f"{kernels}.json"
        out = run("--model", MODEL, "--prompt", PROMPT, "--max-tokens", 32, "--temperature", 0, "--json",
                  "--backend", "cpu", "--cpu-kernels", kernels, "--logits-out", path)
        assert json.loads(out.stdout)["output_ids"] == case["greedy_ids"], kernels
        logits[kernels] = json.loads(path.read_text())
    # fast-fp32: summation order only (~1e-6). fast rounds the routed experts' inputs to bf16 (on AVX512_BF16 CPUs):
    # fortune-moe's logits move up to 0.027 over the golden prompts (tests/golden/golden_test.cc), bound 5e-2.
    assert max(abs(a - b) for a, b in zip(logits["fast-fp32"], logits["reference"])) <= 1e-4
    assert max(abs(a - b) for a, b in zip(logits["fast"], logits["reference"])) <= 5e-2


def test_max_tokens_zero_prints_empty_line():
    out = run("--model", MODEL, "--prompt", PROMPT, "--max-tokens", 0)
    assert out.stdout == b"\n"


def assert_one_line_error(args, needle):
    """moe-run with `args` exits 2, prints nothing on stdout and one 'moe-run: ' line holding `needle` on stderr."""
    proc = run(*args, check=False)
    assert proc.returncode == 2
    err = proc.stderr.decode()
    assert err.startswith("moe-run: ") and err.endswith("\n") and err.count("\n") == 1, err
    assert needle in err
    assert proc.stdout == b""


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--top-p", "1.5"], "--top-p must be in (0, 1], got 1.5"),
        (["--top-p", "0"], "--top-p"),
        (["--temperature", "-1"], "--temperature"),
        (["--max-tokens", "-3"], "--max-tokens"),
        (["--max-tokens", "ten"], "--max-tokens"),
        (["--top-k", "-1"], "--top-k"),
        (["--seed", "x"], "--seed"),
        (["--backend", "tpu"], "--backend"),
        (["--cpu-kernels", "turbo"], "--cpu-kernels must be fast, fast-fp32 or reference, got 'turbo'"),
        (["--bogus", "1"], "unknown flag"),
        (["--max-tokens"], "needs a value"),
        (["--prompt-ids", "1,99999"], "--prompt-ids"),
        (["--max-tokens", "100000"], "context"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(args, needle):
    base = ["--model", MODEL]
    if "--prompt-ids" not in args:
        base += ["--prompt", PROMPT]
    assert_one_line_error([*base, *args], needle)


def test_missing_prompt_and_model_exit_2():
    for args in (["--model", MODEL], ["--prompt", PROMPT], ["--model", MODEL, "--prompt", "a", "--prompt-ids", "1"]):
        proc = run(*args, check=False)
        assert proc.returncode == 2
        assert proc.stderr.decode().count("\n") == 1


def test_bad_model_dir_exit_2(tmp_path):
    for model in (tmp_path / "missing", tmp_path):
        proc = run("--model", model, "--prompt", PROMPT, check=False)
        assert proc.returncode == 2
        err = proc.stderr.decode()
        assert err.startswith("moe-run: ") and err.count("\n") == 1, err
    (tmp_path / "config.json").write_text("{not json")
    proc = run("--model", tmp_path, "--prompt", PROMPT, check=False)
    assert proc.returncode == 2 and proc.stderr.decode().count("\n") == 1


# --- hot-expert cache flags and --stats-out ---------------------------------------------------------------------

def _cache_run(tmp_path, *extra, max_tokens=24):
    stats = tmp_path / "stats.json"
    out = run("--model", MODEL, "--prompt", PROMPT, "--max-tokens", max_tokens, "--temperature", 0, "--backend",
              "cpu", "--json", "--stats-out", stats, *extra)
    return json.loads(out.stdout), json.loads(stats.read_text())


@pytest.mark.parametrize("policy", ["lru", "lfu", "load-aware"])
@pytest.mark.parametrize("prefetch", ["on", "off"])
def test_expert_cache_output_identical_and_stats_add_up(tmp_path, policy, prefetch):
    plain, plain_stats = _cache_run(tmp_path)
    cached, stats = _cache_run(tmp_path, "--expert-cache-slots", 6, "--expert-cache-policy", policy,
                               "--expert-cache-prefetch" if prefetch == "on" else "--expert-cache-prefetch=false")
    assert cached == plain
    assert cached["output_ids"] == golden_case(PROMPT)["greedy_ids"][:24]
    assert stats["expert_cache"] == {"slots": 6, "requested_slots": 6, "policy": policy, "prefetch": prefetch == "on"}
    assert plain_stats["expert_cache"]["slots"] == 0
    assert stats["steps"] == plain_stats["steps"] == 24  # one prefill step + 23 decode steps
    layers = stats["layers"]
    assert len(layers) == 4 and all(l["moe"] for l in layers)
    for layer, plain_layer in zip(layers, plain_stats["layers"]):
        # Routing does not depend on the cache; every step routes each token to top-2 of 8 experts.
        assert layer["routed"] == plain_layer["routed"] and len(layer["routed"]) == 8
        assert plain_layer["hits"] == plain_layer["misses"] == 0
        assert layer["misses"] > 0 and layer["evictions"] > 0
        # One access per (step, expert used); decode steps use exactly 2 experts, the prefill step at most 8.
        accesses = layer["hits"] + layer["misses"]
        assert 23 * 2 + 2 <= accesses <= 23 * 2 + 8
        assert layer["prefetch_used"] + layer["prefetch_wasted"] <= layer["prefetch_issued"]
        # Token-weighted: every routed assignment (dropless) was served by a hit or a miss.
        assert layer["hit_assignments"] + layer["miss_assignments"] == sum(layer["routed"])
        assert layer["hit_assignments"] >= layer["hits"] and layer["miss_assignments"] >= layer["misses"]
    assert sum(sum(l["routed"]) for l in layers) == 4 * 2 * (len(golden_case(PROMPT)["input_ids"]) + 23)
    totals = stats["totals"]
    assert totals["hits"] == sum(l["hits"] for l in layers)
    assert totals["misses"] == sum(l["misses"] for l in layers)
    assert totals["hit_rate"] == pytest.approx(totals["hits"] / (totals["hits"] + totals["misses"]))
    assert totals["resident_experts"] == totals["capacity_experts"] == 6
    assert totals["bytes_transferred"] == (totals["misses"] + totals["prefetch_issued"]) * 3 * 256 * 128 * 4
    assert totals["load_seconds"] >= totals["stall_seconds"] >= 0
    if prefetch == "off":
        assert totals["prefetch_issued"] == 0
    else:
        assert totals["prefetch_issued"] > 0 and layers[0]["prefetch_issued"] == 0  # nothing predicts layer 0


def test_prompts_file_runs_each_line_on_one_warm_cache(tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Never trust a computer\n\nLinux is\n")
    stats = tmp_path / "stats.json"
    out = run("--model", MODEL, "--prompts-file", prompts, "--max-tokens", 8, "--temperature", 0, "--json",
              "--expert-cache-slots", 32, "--stats-out", stats)
    lines = [json.loads(l) for l in out.stdout.decode().splitlines()]
    assert [l["prompt_ids"] for l in lines] == [golden_case(p)["input_ids"] for p in (PROMPT, "Linux is")]
    single = json.loads(run("--model", MODEL, "--prompt", "Linux is", "--max-tokens", 8, "--temperature", 0,
                            "--json").stdout)
    assert lines[1] == single
    totals = json.loads(stats.read_text())["totals"]
    # All 32 experts fit: only cold misses, and the second prompt starts warm.
    assert totals["evictions"] == 0 and totals["misses"] <= 32 and totals["hits"] > 0


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--expert-cache-slots", "-1"], "--expert-cache-slots"),
        (["--expert-cache-slots", "many"], "--expert-cache-slots"),
        (["--expert-cache-policy", "fifo"], "--expert-cache-policy must be lru, lfu or load-aware, got 'fifo'"),
        (["--expert-cache-prefetch=maybe"], "--expert-cache-prefetch: invalid value 'maybe'"),
        (["--expert-cache-prefetch", "yes"], "unexpected argument 'yes'"),  # a boolean never takes the next one
        (["--stats-out", "/nonexistent-dir/stats.json"], "--stats-out"),
        (["--prompts-file", "/nonexistent-dir/prompts.txt"], "--prompts-file"),
    ],
)
def test_bad_cache_arguments_exit_2_with_one_line(args, needle):
    base = ["--model", MODEL]
    if "--prompts-file" not in args:
        base += ["--prompt", PROMPT]
    assert_one_line_error([*base, *args], needle)


def test_help_and_version_exit_0():
    # Each wins over every other argument (no "--help needs a value").
    for args in (["--help"], ["--model", "x", "--help"], ["-h"]):
        out = run(*args, check=False)
        assert out.returncode == 0 and out.stdout.startswith(b"usage: moe-run"), (args, out.stderr)
    out = run("--version", check=False)
    assert out.returncode == 0 and out.stdout.startswith(b"moe-run "), out.stdout
