"""client/python as a package: its wheel builds (stubs generated at build time, nothing written into the source
tree), installs into a fresh venv from PyPI packages only, and that venv's client talks to a real moed.

Slow (a venv, an isolated build with setuptools + grpcio-tools, an install); pip reuses its cache when it can."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import venv
import zipfile
from pathlib import Path

from moed_harness import ROOT, moe_run

PROMPT = "Never trust a computer"
WATCHED = (ROOT / "client" / "python", ROOT / "proto")  # what a build reads and must leave as it was

# Run by the fresh venv's python: the installed client must be the one imported, and answer over gRPC.
PROBE = r"""
import json, sys, moed_client
from moed.v1 import moed_pb2
with moed_client.MoedClient(sys.argv[1]) as c:
    done = c.complete(sys.argv[2], max_tokens=12, temperature=0, timeout=60)
    print(json.dumps({"file": moed_client.__file__, "pb2": moed_pb2.__file__, "health": c.health(timeout=10),
                      "ids": done.token_ids, "text": done.text, "finish": done.finish_reason}))
"""


def snapshot() -> dict[str, tuple]:
    """Every file and folder under WATCHED: path → (mode, size, mtime_ns)."""
    seen = {}
    for top in WATCHED:
        for dirpath, dirnames, filenames in os.walk(top):
            for name in dirnames + filenames:
                st = os.lstat(os.path.join(dirpath, name))
                seen[os.path.join(dirpath, name)] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return seen


def run(cmd: list, **kw) -> subprocess.CompletedProcess:
    out = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=900, **kw)
    assert out.returncode == 0, f"{cmd} exited {out.returncode}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


def test_wheel_builds_installs_in_a_fresh_venv_and_serves(daemon, tmp_path):
    before = snapshot()
    env_dir, wheels = tmp_path / "venv", tmp_path / "wheels"
    venv.EnvBuilder(with_pip=True, system_site_packages=False).create(env_dir)
    py = env_dir / "bin" / "python"
    pip = [py, "-m", "pip", "--disable-pip-version-check"]
    # Built under umask 077, as a careful user might: the wheel must still hold files that everyone can read.
    run(pip + ["wheel", "--no-deps", "-w", wheels, ROOT / "client" / "python"], cwd=tmp_path,
        preexec_fn=lambda: os.umask(0o077))
    (wheel,) = wheels.glob("moed_client-*.whl")

    # The stubs are in the wheel, with ordinary modes (not the 0700 of a temporary folder).
    with zipfile.ZipFile(wheel) as z:
        modes = {i.filename: (i.external_attr >> 16) & 0o777 for i in z.infolist()}
    assert {"moed/v1/moed_pb2.py", "moed/v1/moed_pb2_grpc.py", "moed_client/__init__.py"} <= set(modes)
    assert all(m == 0o644 for f, m in modes.items() if f.endswith(".py")), modes

    run(pip + ["install", wheel], cwd=tmp_path)
    out = run([py, "-c", PROBE, daemon.addr, PROMPT], cwd=tmp_path)
    got = json.loads(out.stdout)
    site = (env_dir / "lib").resolve()
    for key in ("file", "pb2"):
        assert Path(got[key]).resolve().is_relative_to(site), got[key]  # the installed copy, not the source tree
    installed = Path(got["pb2"])
    assert stat.S_IMODE(installed.stat().st_mode) & 0o044 == 0o044, oct(installed.stat().st_mode)  # others may read
    assert got["health"] == "SERVING"
    ref = moe_run(PROMPT, 12)
    assert got["ids"] == ref["output_ids"] and got["text"] == ref["text"]

    cli = run([py, "-m", "moed_client", "--addr", daemon.addr, "tokenize", PROMPT], cwd=tmp_path)
    assert list(map(int, cli.stdout.split())) == ref["prompt_ids"]

    after = snapshot()
    assert after == before, {"added": sorted(set(after) - set(before)), "removed": sorted(set(before) - set(after)),
                             "changed": sorted(p for p in set(after) & set(before) if after[p] != before[p])}
