"""A live moed + Prometheus on 127.0.0.1 for the deploy tests: processes, gRPC load, scrapes and PromQL.

Everything binds loopback, is bounded in time, and is stopped by close().
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

from .promql_names import ROOT, RULE_FILES
from .tools import tool

SERVING_LINE = re.compile(r"moed: serving .* on [\d.]+:(\d+), metrics on [\d.]+:(\d+)")
PROMPTS = ["Never trust a computer", "A fool and his money", "The best things in life are",
           "Love is", "Today is a good day to", "There is no such thing as", "Beware of", "Life is"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.read().decode()


class Moed:
    """`moed --port 0 --metrics-port 0` on loopback; ports parsed from its serving line on stderr."""

    def __init__(self, binary, *flags, start_timeout=60):
        self.log = []
        self.proc = subprocess.Popen(
            [str(binary), "--model", str(ROOT / "models" / "fortune-moe"), "--host", "127.0.0.1", "--port", "0",
             "--metrics-port", "0", *flags],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        found = threading.Event()
        self.port = self.metrics_port = None

        def read():
            for line in self.proc.stderr:
                self.log.append(line.rstrip())
                m = SERVING_LINE.search(line)
                if m and not found.is_set():
                    self.port, self.metrics_port = int(m.group(1)), int(m.group(2))
                    found.set()

        threading.Thread(target=read, daemon=True).start()
        if not found.wait(start_timeout):
            self.close()
            raise RuntimeError(f"moed printed no serving line in {start_timeout}s:\n" + "\n".join(self.log[-20:]))

    def exposition(self):
        return http_get(f"http://127.0.0.1:{self.metrics_port}/metrics")

    def close(self, timeout=40):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def families(exposition):
    """`# TYPE name kind` lines → {family: kind}: moed's own families and its process_* families."""
    out = {}
    for line in exposition.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[:2] == ["#", "TYPE"] and parts[2].startswith(("moed_", "process_")):
            out[parts[2]] = parts[3]
    return out


def sample_names(exposition):
    return {re.split(r"[{ ]", line, 1)[0] for line in exposition.splitlines() if line and not line.startswith("#")}


class Prometheus:
    """Debian's prometheus scraping one target every second, with moed's rule files loaded."""

    def __init__(self, workdir, target, job="moed"):
        workdir = Path(workdir)
        self.port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(p) for p in RULE_FILES],
            "scrape_configs": [{"job_name": job, "static_configs": [{"targets": [target]}]}],
        }
        (workdir / "prometheus.yml").write_text(json.dumps(config))
        self.log = open(workdir / "prometheus.log", "w")
        self.proc = subprocess.Popen(
            [tool("prometheus"), f"--config.file={workdir / 'prometheus.yml'}",
             f"--storage.tsdb.path={workdir / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}",
             "--log.level=warn"], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                http_get(f"http://127.0.0.1:{self.port}/-/ready", timeout=2)
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.2)
        self.close()
        raise RuntimeError(f"prometheus did not become ready:\n{(workdir / 'prometheus.log').read_text()[-2000:]}")

    def api(self, path, **params):
        """GET /api/v1/<path>; returns the decoded body (errors included: status "error", error text)."""
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?" + urllib.parse.urlencode(params, doseq=True)
        try:
            return json.loads(http_get(url))
        except urllib.error.HTTPError as e:
            return json.loads(e.read().decode())

    def query(self, expr, **params):
        return self.api("query", query=expr, **params)

    def query_range(self, expr, seconds, step="1s"):
        now = time.time()
        return self.api("query_range", query=expr, start=now - seconds, end=now, step=step)

    def wait_for(self, expr, timeout):
        """Polls an instant query until it returns a series; False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.query(expr).get("data", {}).get("result"):
                return True
            time.sleep(0.5)
        return False

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def grpc_stubs(outdir):
    """Generates Python stubs from proto/moed/v1/moed.proto into outdir; returns (moed_pb2, moed_pb2_grpc)."""
    from grpc_tools import protoc
    import grpc_tools

    include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    rc = protoc.main(["protoc", f"-I{ROOT / 'proto'}", f"-I{include}", f"--python_out={outdir}",
                      f"--grpc_python_out={outdir}", "moed/v1/moed.proto"])
    assert rc == 0, "protoc failed on proto/moed/v1/moed.proto"
    sys.path.insert(0, str(outdir))
    from moed.v1 import moed_pb2, moed_pb2_grpc  # noqa: E402 (generated above)
    return moed_pb2, moed_pb2_grpc


class Load:
    """`streams` threads, each streaming Generate calls back to back until stop() or max_seconds."""

    def __init__(self, port, pb2, pb2_grpc, streams=6, max_tokens=40, max_seconds=60):
        import grpc

        self.stop_event = threading.Event()
        self.deadline = time.monotonic() + max_seconds
        self.completed = 0
        self.tokens = 0
        self.errors = []
        self.lock = threading.Lock()
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub = pb2_grpc.MoedStub(self.channel)
        self.pb2, self.max_tokens = pb2, max_tokens
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(streams)]
        for t in self.threads:
            t.start()

    def _run(self, worker):
        n = 0
        while not self.stop_event.is_set() and time.monotonic() < self.deadline:
            prompt = PROMPTS[(worker + n) % len(PROMPTS)]
            sampling = self.pb2.SamplingParams(temperature=0.8, seed=worker * 1000 + n, max_tokens=self.max_tokens,
                                               ignore_eos=True)
            request = self.pb2.GenerateRequest(prompt=prompt, sampling=sampling)
            try:
                got = sum(len(r.token_ids) for r in self.stub.Generate(request, timeout=30))
                with self.lock:
                    self.completed += 1
                    self.tokens += got
            except Exception as e:  # recorded; the test asserts none happened
                with self.lock:
                    self.errors.append(repr(e))
                time.sleep(0.2)
            n += 1

    def stop(self):
        self.stop_event.set()
        for t in self.threads:
            t.join(35)
        self.channel.close()
