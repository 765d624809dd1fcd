"""Integration-test harness: runs a real moed on 127.0.0.1, the offline moe-run for references,
moectl/moe-bench subprocesses, and reads the daemon's /metrics exposition."""

from __future__ import annotations

import functools
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Optional, Sequence

import grpc
import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD_DIR = Path(os.environ.get("MOED_BUILD_DIR", ROOT / "build")).resolve()
MODEL_DIR = ROOT / "models" / "fortune-moe"

# The tests' gRPC client is the Python client package (client/python), installed into the venv by ./moed.sh setup.
try:
    import moed_client
    from moed_client import MoedClient, pb  # noqa: F401
except ImportError as e:
    raise ImportError(f"{e}: install the client package first (pip install ./client/python, or ./moed.sh setup)") from e

_SERVING_LINE = re.compile(r"moed: serving .* on (\S+):(\d+), metrics on (\S+):(\d+)")
_HTTP_LINE = re.compile(r"moed: serving .*, http on (\S+):(\d+)")


def binary(name: str) -> Path:
    """A program built into MOED_BUILD_DIR; fails the test (not skips) when it is missing."""
    path = BUILD_DIR / name
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is not built (MOED_BUILD_DIR={BUILD_DIR})")
    return path


def model_config() -> dict:
    return json.loads((MODEL_DIR / "config.json").read_text())


@functools.lru_cache(maxsize=None)
def moe_run(prompt: Optional[str] = None, max_tokens: int = 16, prompt_ids: Optional[tuple] = None) -> dict:
    """moe-run's single-request greedy output: {"prompt_ids", "output_ids", "text"} (cached)."""
    cmd = [str(binary("moe-run")), "--model", str(MODEL_DIR), "--max-tokens", str(max_tokens),
           "--temperature", "0", "--json", "--backend", "cpu"]
    cmd += ["--prompt", prompt] if prompt is not None else ["--prompt-ids", ",".join(map(str, prompt_ids))]
    out = subprocess.run(cmd, capture_output=True, timeout=120)
    assert out.returncode == 0, f"{cmd} exited {out.returncode}: {out.stderr.decode(errors='replace')}"
    return json.loads(out.stdout)


def parse_metrics(text: str) -> list[tuple[str, dict, float]]:
    """Prometheus text exposition → [(name, labels, value)] (comments skipped)."""
    samples = []
    line_re = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
    label_re = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = line_re.match(line)
        if m is None:
            continue
        labels = dict(label_re.findall(m.group(2) or ""))
        samples.append((m.group(1), labels, float(m.group(3))))
    return samples


class Metrics:
    """One scrape of /metrics."""

    def __init__(self, text: str):
        self.text = text
        self.samples = parse_metrics(text)

    def get(self, name: str, **labels) -> float:
        """The sum of `name` over the series whose labels include `labels`; fails when none exists."""
        found = [v for n, lab, v in self.samples
                 if n == name and all(lab.get(k) == str(v) for k, v in labels.items())]
        assert found, f"no series {name}{labels} in /metrics"
        return sum(found)


class Daemon:
    """A moed process on 127.0.0.1 with ports picked by the daemon, its log in `tmp_dir/moed.log`."""

    def __init__(self, tmp_dir: Path, *args: str):
        self.tmp_dir = Path(tmp_dir)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.tmp_dir / "moed.log"
        self.args = [str(binary("moed")), "--model", str(MODEL_DIR), "--host", "127.0.0.1", "--port", "0",
                     "--metrics-port", "0", "--backend", "cpu", *args]
        self.proc: Optional[subprocess.Popen] = None
        self.addr = ""
        self.metrics_url = ""
        self.http_addr = ""  # host:port of the OpenAI HTTP front (--http-port), when served
        self.client: Optional[MoedClient] = None

    def start(self, timeout: float = 60.0, wait_health: bool = True) -> "Daemon":
        """Runs moed until its serving line; then (wait_health) until health is SERVING over plaintext."""
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT, cwd=self.tmp_dir)
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            m = _SERVING_LINE.search(self.log())
            if m:
                break
            if self.proc.poll() is not None:
                pytest.fail(f"moed exited with {self.proc.returncode} before serving:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"moed printed no 'serving' line within {timeout}s:\n{self.log_tail()}")
            time.sleep(0.05)
        self.addr = f"{m.group(1)}:{m.group(2)}"
        self.metrics_url = f"http://{m.group(3)}:{m.group(4)}/metrics"
        h = _HTTP_LINE.search(self.log())
        self.http_addr = f"{h.group(1)}:{h.group(2)}" if h else ""
        self.client = MoedClient(self.addr)
        if wait_health:
            self.wait_health("SERVING", deadline - time.monotonic())
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, n: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-n:])

    def health(self, timeout: float = 2.0) -> str:
        return self.client.health(timeout=timeout)

    def wait_health(self, want: str, timeout: float) -> None:
        deadline = time.monotonic() + max(timeout, 1.0)
        last = None
        while time.monotonic() < deadline:
            try:
                last = self.health()
                if last == want:
                    return
            except grpc.RpcError as e:
                last = e.code().name
            time.sleep(0.05)
        pytest.fail(f"health never became {want} (last: {last}):\n{self.log_tail()}")

    def metrics(self) -> Metrics:
        with urllib.request.urlopen(self.metrics_url, timeout=5) as r:
            return Metrics(r.read().decode())

    def wait_metric(self, name: str, want: float, timeout: float = 5.0, **labels) -> float:
        """Polls /metrics until `name` equals `want`; returns the last value seen."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.metrics().get(name, **labels)
            if math.isclose(value, want, abs_tol=1e-9) or time.monotonic() > deadline:
                return value
            time.sleep(0.05)

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM, then the exit code (the daemon is killed and the test fails past `timeout`)."""
        if self.client is not None:
            self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"moed did not exit within {timeout}s of SIGTERM:\n{self.log_tail()}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def run_tool(name: str, args: Sequence[str], timeout: float = 120.0) -> subprocess.CompletedProcess:
    """Runs a program from the build dir, capturing text output."""
    return subprocess.run([str(binary(name)), *args], capture_output=True, text=True, timeout=timeout)


def rpc_error(fn) -> grpc.RpcError:
    """Calls fn() and returns the grpc.RpcError it raised (fails when it succeeded)."""
    try:
        fn()
    except grpc.RpcError as e:
        return e
    pytest.fail("the call succeeded but an error was expected")
