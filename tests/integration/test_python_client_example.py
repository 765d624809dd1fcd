"""client/python/examples/quickstart.py, run as a user would, against a real moed (gRPC and --http-port): both
paths print moe-run's greedy text and its token counts, and the OpenAI path shows the routing extension."""

from __future__ import annotations

import ast
import re
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
    """The example's output split into its blocks: one per path, each "[header]\n<completion text>\n  details"."""
    out = subprocess.run([sys.executable, str(EXAMPLE), *args], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return re.split(r"\n(?=\[OpenAI )", out.stdout)


def check_block(block: str, header: str, ref: dict) -> list[str]:
    """Asserts that `block` shows the reference text and token count; returns its lines after the text."""
    assert block.startswith(header), block
    text_and_rest = block.split("\n", 1)[1]
    assert text_and_rest.startswith(ref["text"] + "\n  finish="), block  # the streamed chunks, joined
    details = text_and_rest[len(ref["text"]) + 1:].splitlines()
    assert details[0].endswith(f"completion_tokens={len(ref['output_ids'])}"), block
    return details


def test_quickstart_grpc_path(daemon):
    ref = moe_run(PROMPT, MAX_TOKENS)
    (grpc_block,) = run_example("--grpc", daemon.addr)
    check_block(grpc_block, f"[gRPC {daemon.addr}] mixtral model", ref)


def test_quickstart_grpc_and_openai_paths(http_daemon):
    ref = moe_run(PROMPT, MAX_TOKENS)
    grpc_block, openai_block = run_example("--grpc", http_daemon.addr, "--http", f"http://{http_daemon.http_addr}")
    check_block(grpc_block, f"[gRPC {http_daemon.addr}] mixtral model", ref)
    details = check_block(openai_block, f"[OpenAI http://{http_daemon.http_addr}] model=", ref)
    top_k, most = model_config()["num_experts_per_tok"], len(ref["prompt_ids"]) + len(ref["output_ids"])
    for layer in (0, 1):  # each computed token went to top_k experts (prefix-cached prompt tokens are not computed)
        shown = details[1 + layer]
        assert shown.startswith(f"  layer {layer}: tokens per expert {{"), details
        counts = ast.literal_eval(shown.split("expert ", 1)[1])
        total = sum(counts.values())
        assert total % top_k == 0 and top_k * len(ref["output_ids"]) <= total <= top_k * most, shown
