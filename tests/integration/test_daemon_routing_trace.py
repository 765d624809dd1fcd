"""Routing trace (issue 16): moed --routing-trace FILE writes sampled per-token routing as gzip JSON lines;
moectl trace dump/stop/start/status control it; the records match the tokens the request computed (its prompt and
every generated token but the last), with each layer's experts and router weights."""
import collections
import gzip
import json
import time

import grpc
import pytest

from moed_client import pb
from moed_harness import MODEL_DIR, model_config, rpc_error, run_tool

CONFIG = model_config()
LAYERS = CONFIG["num_hidden_layers"]
TOP_K = CONFIG["num_experts_per_tok"]


def lines(path):
    with gzip.open(path, "rt") as f:
        return [json.loads(line) for line in f]


def trace(d, *args):
    out = run_tool("moectl", ["--addr", d.addr, "trace", *args, "--json"])
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_trace_records_every_computed_token_and_dumps(make_daemon, tmp_path):
    path = tmp_path / "routing.jsonl.gz"
    d = make_daemon("--routing-trace", str(path), "--routing-trace-sample", "1")
    assert trace(d, "status")["active"]
    # No client id: the response then carries the server's id, which is what the trace records.
    c = d.client.complete("Trace my routing, please", temperature=0, max_tokens=9, ignore_eos=True, timeout=60)
    assert c.request_id.startswith("r")
    assert c.cached_tokens == 0  # the daemon's first request: nothing cached
    dumped = trace(d, "dump")
    computed = c.prompt_tokens + len(c.token_ids) - 1
    assert dumped["dumped_path"] == f"{path}.1" and dumped["records"] == computed
    records = [r for r in lines(dumped["dumped_path"]) if r["request"] == c.request_id]
    # Every prompt token, then every generated token but the last, in position order.
    assert [r["position"] for r in records] == list(range(computed))
    assert [r["token"] for r in records[c.prompt_tokens:]] == c.token_ids[:-1]
    for r in records:
        assert len(r["experts"]) == LAYERS and all(len(set(e)) == TOP_K for e in r["experts"])
        assert [len(w) for w in r["weights"]] == [TOP_K] * LAYERS
        # Mixtral renormalises the top-k softmax: each layer's weights sum to 1 (printed with 6 digits), in the
        # router's order (largest first).
        for w in r["weights"]:
            assert abs(sum(w) - 1) < 1e-5 and w == sorted(w, reverse=True)
    # The same tokens as the expert profile counted, per (layer, expert, token).
    deadline = time.monotonic() + 10  # the profile snapshot is published just after the stream ends
    while True:
        prof = d.client.stub.GetExpertProfile(pb.GetExpertProfileRequest(top_n=32), timeout=10)
        if prof.tokens_profiled >= len(records) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    profiled = collections.Counter({(x.layer, x.expert, t.token_id): t.count for x in prof.experts
                                    for t in x.top_tokens})
    traced = collections.Counter((l, e, r["token"]) for r in records for l, es in enumerate(r["experts"]) for e in es)
    assert traced == profiled
    # After the dump the trace goes on in a fresh file; stop closes it.
    more = d.client.complete("More", temperature=0, max_tokens=3, ignore_eos=True, timeout=60)
    stopped = trace(d, "stop")
    assert not stopped["active"]
    assert [r["request"] for r in lines(path)] == [more.request_id] * (more.prompt_tokens - more.cached_tokens + 2)
    assert trace(d, "start", "--sample", "0.5")["sample"] == 0.5
    err = rpc_error(lambda: d.client.stub.ControlRoutingTrace(
        pb.RoutingTraceRequest(action=pb.RoutingTraceRequest.START), timeout=10))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_trace_needs_a_file_and_samples_requests(make_daemon, tmp_path):
    d = make_daemon()
    out = run_tool("moectl", ["--addr", d.addr, "trace", "start"])
    assert out.returncode == 1 and "--routing-trace FILE" in out.stderr
    assert not trace(d, "status")["active"]
    bad = run_tool("moed", ["--routing-trace", str(tmp_path / "x.gz"), "--routing-trace-sample", "0"], timeout=30)
    assert bad.returncode == 2 and "--routing-trace-sample must be in (0, 1]" in bad.stderr
    unwritable = run_tool("moed", ["--model", str(MODEL_DIR), "--routing-trace", "/nonexistent-dir/x.gz", "--host",
                                   "127.0.0.1", "--port", "0", "--metrics-port", "0", "--backend", "cpu"], timeout=60)
    assert unwritable.returncode == 2 and "--routing-trace" in unwritable.stderr
    # A tiny share samples (almost surely) no request: nothing recorded.
    s = make_daemon("--routing-trace", str(tmp_path / "few.jsonl.gz"), "--routing-trace-sample", "1e-12")
    s.client.complete("Not traced", temperature=0, max_tokens=4, ignore_eos=True, timeout=60)
    assert trace(s, "stop")["records"] == 0


def test_plan_ep_from_a_trace(make_daemon, tmp_path):
    path = tmp_path / "plan.jsonl.gz"
    d = make_daemon("--routing-trace", str(path))
    for prompt in ("One", "Two prompts", "Three prompts here"):
        d.client.complete(prompt, temperature=0, max_tokens=8, ignore_eos=True, timeout=60)
    dumped = trace(d, "dump")["dumped_path"]
    records = lines(dumped)
    out = run_tool("moectl", ["plan-ep", "--gpus", "4", "--trace", dumped, "--hidden-size",
                              str(CONFIG["hidden_size"]), "--tokens-per-step", "100", "--json"])
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    assert len(plan["layers"]) == LAYERS
    assert plan["redundant"] == 0  # 8 experts on 4 GPUs: two each, no copies
    for layer in plan["layers"]:
        counts = collections.Counter(e for r in records for e in r["experts"][layer["layer"]])
        # Each GPU serves its experts' share of the trace, scaled to 100 tokens (x top-k assignments) per step.
        for slots, load in zip(layer["gpu_experts"], layer["gpu_load"]):
            assert load == pytest.approx(sum(counts[e] for e in slots) * 100 / len(records))
        assert sum(layer["gpu_load"]) == pytest.approx(TOP_K * 100)
        assert layer["balancedness"] == pytest.approx(TOP_K * 100 / 4 / max(layer["gpu_load"]))
    bad = run_tool("moectl", ["plan-ep", "--gpus", "4", "--trace", str(tmp_path / "missing.gz"), "--hidden-size", "8"])
    assert bad.returncode == 2 and "cannot open" in bad.stderr
