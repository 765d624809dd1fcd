"""A real Prometheus (Debian's binary) scrapes moed every second during load; PromQL over
moed_expert_tokens_total must equal the tokens the requests put through the model × top-k × layers,
and `promtool check metrics` accepts the exposition."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request

import pytest

from moed_harness import model_config, run_tool

CFG = model_config()
LAYERS, TOP_K = CFG["num_hidden_layers"], CFG["num_experts_per_tok"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed (Debian package 'prometheus'; ./moed.sh setup installs it)")
    return path


@pytest.fixture
def prometheus(tmp_path):
    """Starts Prometheus on 127.0.0.1; returns (start(target), query(promql))."""
    port = free_port()
    procs = []

    def start(target: str):
        cfg = tmp_path / "prometheus.yml"
        cfg.write_text("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                       "scrape_configs:\n  - job_name: moed\n    static_configs:\n"
                       f"      - targets: ['{target}']\n")
        log = open(tmp_path / "prometheus.log", "wb")
        procs.append(subprocess.Popen(
            [tool("prometheus"), f"--config.file={cfg}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        pytest.fail("prometheus did not become ready:\n" + (tmp_path / "prometheus.log").read_text()[-3000:])

    def query(promql: str) -> list:
        url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=5) as r:
            body = json.loads(r.read())
        assert body["status"] == "success", body
        return body["data"]["result"]

    yield start, query
    for p in procs:
        p.terminate()
        p.wait(timeout=30)


def test_promql_expert_tokens_equal_processed_tokens(make_daemon, prometheus, tmp_path):
    start, query = prometheus
    d = make_daemon()
    start(d.metrics_url.split("//")[1].split("/")[0])
    # Load: moe-bench with prompt_ids of an exact length and ignore_eos, so every request processes
    # exactly prompt + output - 1 tokens; plus a few text prompts through the Python client.
    out = run_tool("moe-bench", ["--addr", d.addr, "--concurrency", "6", "--num-requests", "30",
                                 "--prompt-len", "20", "--output-len", "24", "--ignore-eos", "--temperature", "0.7"])
    assert out.returncode == 0, out.stderr
    bench = json.loads(out.stdout)
    assert bench["requests"] == {"ok": 30, "failed": 0}
    finished = [d.client.complete(p, temperature=0, max_tokens=13, ignore_eos=True, timeout=60)
                for p in ("Scrape me", "Count every routed token", "Once more")]
    # The engine routes every token it runs through the model: all prompt tokens (prefill yields the
    # first generated token) and each generated token fed back to produce the next one. The last
    # sampled token of a finished request is never fed back, hence processed = prompt + generated - 1.
    # (Preemption would recompute tokens and count them again; the default KV size never preempts here.)
    processed = bench["input_tokens"] + bench["output_tokens"] - bench["requests"]["ok"]
    processed += sum(c.prompt_tokens + c.completion_tokens - 1 for c in finished)
    want = processed * TOP_K * LAYERS

    m = d.metrics()
    assert m.get("moed_preemptions_total") == 0
    # Prompt tokens served from the prefix cache are never run through the model (none expected here: random
    # prompts, short texts), so they are not routed either.
    processed -= m.get("moed_prefix_cache_hits_total")
    want = processed * TOP_K * LAYERS
    assert sum(v for n, _, v in m.samples if n == "moed_expert_tokens_total") == want
    assert m.get("moed_prompt_tokens_total") + m.get("moed_generated_tokens_total") - 30 - len(finished) == processed
    got = None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        result = query("sum(moed_expert_tokens_total)")
        got = float(result[0]["value"][1]) if result else None
        if got == want:
            break
        time.sleep(0.5)
    assert got == want, f"PromQL sum(moed_expert_tokens_total) = {got}, want {want}"
    per_layer = query("sum by (layer) (moed_expert_tokens_total)")
    assert sorted(int(r["metric"]["layer"]) for r in per_layer) == list(range(LAYERS))
    assert all(float(r["value"][1]) == processed * TOP_K for r in per_layer)
    assert query('up{job="moed"}')[0]["value"][1] == "1"

    exposition = tmp_path / "metrics.txt"
    exposition.write_text(d.metrics().text)
    check = subprocess.run([tool("promtool"), "check", "metrics"], stdin=exposition.open("rb"),
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert d.stop() == 0, d.log_tail()
