"""client/python/examples/quickstart.py, run as a user would, against a real moed: its greedy text is moe-run's."""

from __future__ import annotations

import subprocess
import sys

from moed_harness import ROOT, moe_run

EXAMPLE = ROOT / "client" / "python" / "examples" / "quickstart.py"


def test_quickstart_grpc_path(daemon):
    out = subprocess.run([sys.executable, str(EXAMPLE), "--grpc", daemon.addr], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    ref = moe_run("Never trust a computer", 24)
    lines = out.stdout.splitlines()
    assert lines[0].startswith(f"[gRPC {daemon.addr}] mixtral model"), lines
    assert ref["text"] in out.stdout
    assert f"completion_tokens={len(ref['output_ids'])}" in out.stdout
