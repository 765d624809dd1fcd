"""client/python/examples/quickstart.py, run as a user would, against a real moed (gRPC and --http-port): both
paths print moe-run's greedy text and its token counts, and the OpenAI path shows the routing extension."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from moed_harness import ROOT, model_config, moe_run

EXAMPLE = ROOT / "client" / "python" / "examples" / "quickstart.py"
PROMPT, MAX_TOKENS = "Never trust a computer", 24  # as the example asks


@pytest.fixture(scope="module")
def http_daemon(tmp_path_factory):
    from moed_harness import Daemon

    d = Daemon(tmp_path_factory.mktemp("moed-quickstart"), "--http-port", "-1").start()
    assert d.http_addr, d.log_tail()
    yield d
    assert d.stop() == 0, d.log_tail()


def run_example(*args: str) -> list[str]:
    out = subprocess.run([sys.executable, str(EXAMPLE), *args], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def test_quickstart_grpc_path(daemon):
    ref = moe_run(PROMPT, MAX_TOKENS)
    lines = run_example("--grpc", daemon.addr)
    assert lines[0].startswith(f"[gRPC {daemon.addr}] mixtral model"), lines
    assert lines[1] == ref["text"], lines
    assert lines[2].endswith(f"completion_tokens={len(ref['output_ids'])}"), lines


def test_quickstart_grpc_and_openai_paths(http_daemon):
    ref = moe_run(PROMPT, MAX_TOKENS)
    lines = run_example("--grpc", http_daemon.addr, "--http", f"http://{http_daemon.http_addr}")
    assert lines[1] == ref["text"], lines
    i = next(i for i, ln in enumerate(lines) if ln.startswith("[OpenAI "))
    assert lines[i + 1] == ref["text"], lines  # the streamed chunks, joined
    assert lines[i + 2].endswith(f"completion_tokens={len(ref['output_ids'])}"), lines
    top_k, most = model_config()["num_experts_per_tok"], len(ref["prompt_ids"]) + len(ref["output_ids"])
    for layer in (0, 1):  # each computed token went to top_k experts (prefix-cached prompt tokens are not computed)
        shown = lines[i + 3 + layer]
        assert shown.startswith(f"  layer {layer}: tokens per expert {{"), lines
        counts = ast.literal_eval(shown.split("expert ", 1)[1])
        total = sum(counts.values())
        assert total % top_k == 0 and top_k * len(ref["output_ids"]) <= total <= top_k * most, shown
