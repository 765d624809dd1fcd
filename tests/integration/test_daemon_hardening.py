"""Hostile clients (issue 12): oversized prompts and ids are refused by their bytes before any tokenizing,
health stays fast meanwhile, unparseable requests get INVALID_ARGUMENT naming the problem, clients that do
not read are cut (RESOURCE_EXHAUSTED) and their KV freed, and every request leaves one log line."""

from __future__ import annotations

import json
import threading
import time

import grpc
import pytest

from moed_client import collect, make_request, moed_pb2_grpc, pb
from moed_harness import rpc_error

MIB = 1 << 20


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_health_stays_fast_while_16_clients_send_1_mib_prompts(daemon):
    rss_before = rss_bytes(daemon.proc.pid)
    prompt = "word " * (MIB // 5)  # 1 MiB of text: far over what a 1024-token context can hold
    errors, stop = [], threading.Event()
    sent = [0] * 16

    def hammer(i):
        while not stop.is_set() and sent[i] < 8:
            err = rpc_error(lambda: collect(daemon.client.generate(prompt, max_tokens=4, timeout=30)))
            sent[i] += 1
            if err.code() != grpc.StatusCode.INVALID_ARGUMENT or "bytes, over the limit of" not in err.details():
                errors.append((err.code(), err.details()))

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    worst = 0.0
    try:
        while any(t.is_alive() for t in threads):
            start = time.monotonic()
            assert daemon.health(timeout=5) == "SERVING"
            worst = max(worst, time.monotonic() - start)
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert not errors, errors[:3]
    assert sum(sent) == 16 * 8
    assert worst < 1.0, f"a health check took {worst:.2f} s"
    # 128 prompts of 1 MiB went through; what stays is gRPC's buffers, not a copy per prompt.
    growth = rss_bytes(daemon.proc.pid) - rss_before
    assert growth < 128 * MIB, f"RSS grew by {growth / MIB:.0f} MiB"


def test_a_4_mb_request_id_is_refused_and_a_legal_one_is_echoed_once(daemon):
    err = rpc_error(lambda: collect(daemon.client.generate("Hello", max_tokens=2, request_id="x" * 4_000_000,
                                                           timeout=30)))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "request_id is 4000000 bytes, over the limit of 256 bytes" in err.details()
    messages = list(daemon.client.generate("Hello there", max_tokens=6, temperature=0, ignore_eos=True,
                                           request_id="i" * 256, timeout=30))
    assert len(messages) >= 2
    assert messages[0].request_id == "i" * 256
    assert all(m.request_id == "" for m in messages[1:])


def test_logprobs_zero_returns_no_logprobs(daemon):
    c = daemon.client.complete("Hello", max_tokens=5, temperature=0, ignore_eos=True, logprobs=0, timeout=30)
    assert c.completion_tokens == 5 and c.logprobs == []
    c = daemon.client.complete("Hello", max_tokens=5, temperature=0, ignore_eos=True, logprobs=2, timeout=30)
    assert len(c.logprobs) == 5 and all(len(lp.top) == 2 for lp in c.logprobs)


def raw_call(daemon, method: str, payload: bytes, streaming: bool):
    """Sends `payload` as the request bytes of /moed.v1.Moed/<method>, unchecked by any client serializer."""
    channel = daemon.client.channel
    path = f"/moed.v1.Moed/{method}"
    ident = lambda b: b  # noqa: E731
    if streaming:
        return list(channel.unary_stream(path, request_serializer=ident, response_deserializer=ident)(
            payload, timeout=30))
    return channel.unary_unary(path, request_serializer=ident, response_deserializer=ident)(payload, timeout=30)


@pytest.mark.parametrize("method,payload,streaming,problem", [
    # field 2 (prompt), length 3, bytes ff fe fd: not UTF-8
    ("Generate", b"\x12\x03\xff\xfe\xfd", True, "prompt is not valid UTF-8"),
    # field 4 (sampling) holding field 6 (stop) = c3 28: an invalid 2-byte sequence
    ("Generate", b"\x12\x02hi\x22\x04\x32\x02\xc3\x28", True, "sampling.stop[0] is not valid UTF-8"),
    # field 2 (prompt) says 100 bytes, 3 follow
    ("Generate", b"\x12\x64abc", True, "truncated or malformed"),
    ("Tokenize", b"\x0a\x02\xc0\xaf", False, "text is not valid UTF-8"),
    ("GetModelInfo", b"\x0a\x05ab", False, "truncated or malformed"),
])
def test_unparseable_requests_are_invalid_argument_and_counted(daemon, method, payload, streaming, problem):
    before = daemon.metrics().get("moed_requests_rejected_total", reason="unparseable")
    err = rpc_error(lambda: raw_call(daemon, method, payload, streaming))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (err.code(), err.details())
    assert "request does not parse as moed.v1." in err.details() and problem in err.details(), err.details()
    assert daemon.wait_metric("moed_requests_rejected_total", before + 1, reason="unparseable") == before + 1


def test_every_request_leaves_one_log_line(daemon):
    rid = "log-line-check-1"
    c = daemon.client.complete("Logged", max_tokens=3, temperature=0, ignore_eos=True, request_id=rid, timeout=30)
    deadline = time.monotonic() + 5
    lines = []
    while not lines and time.monotonic() < deadline:
        lines = [ln for ln in daemon.log().splitlines() if f"id={rid}" in ln]
        time.sleep(0.02)
    assert len(lines) == 1, lines
    line = lines[0]
    for part in ("request finished", "status=OK", f"prompt_tokens={c.prompt_tokens}", "completion_tokens=3",
                 "finish_reason=length", "ttft_s=", "duration_s="):
        assert part in line, line


def test_json_log_format_and_errors_are_logged(make_daemon):
    d = make_daemon("--log-format", "json")
    err = rpc_error(lambda: d.client.complete("x", max_tokens=0, request_id="bad-one", timeout=30))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    deadline = time.monotonic() + 5
    records = []
    while time.monotonic() < deadline:
        records = [json.loads(ln) for ln in d.log().splitlines() if ln.startswith("{")]
        if any(r.get("id") == "bad-one" for r in records):
            break
        time.sleep(0.02)
    assert records and all({"ts", "severity", "msg"} <= r.keys() for r in records)
    bad = [r for r in records if r.get("id") == "bad-one"]
    assert len(bad) == 1 and bad[0]["status"] == "INVALID_ARGUMENT" and "max_tokens" in bad[0]["error"]
    assert bad[0]["completion_tokens"] == 0 and bad[0]["ttft_s"] is None


# ---- Back-pressure: a client that does not read ----

def non_reading_call(daemon, prompt: str):
    """A Generate stream whose client never reads: a small receive window (no BDP growth) so the server's
    writes block after a few KiB. Returns (channel, call)."""
    channel = grpc.insecure_channel(daemon.addr, options=[
        ("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 1024)])
    stub = moed_pb2_grpc.MoedStub(channel)
    # 20 alternatives per token make each message ~250 bytes: 900 tokens are far more than any window.
    call = stub.Generate(make_request(prompt, temperature=0, max_tokens=900, ignore_eos=True, logprobs=20),
                         timeout=120)
    return channel, call


@pytest.mark.parametrize("flags,cause", [
    (("--stream-buffer-bytes", "16384"), "--stream-buffer-bytes"),
    (("--stream-stall-timeout", "1ms", "--stream-buffer-bytes", "1073741824"), "--stream-stall-timeout"),
])
def test_a_client_that_does_not_read_is_cut_and_its_kv_freed(make_daemon, flags, cause):
    d = make_daemon("--max-logprobs", "20", *flags)
    channel, call = non_reading_call(d, "Nobody reads this")
    try:
        # The engine stops generating for it long before its 900 tokens: running and KV return to 0.
        deadline = time.monotonic() + 60
        while d.metrics().get("moed_generated_tokens_total") == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert d.wait_metric("moed_requests_running", 0, timeout=60) == 0
        assert d.wait_metric("moed_kv_cache_blocks_used", 0, timeout=10) == 0
        generated = d.metrics().get("moed_generated_tokens_total")
        assert 0 < generated < 900, generated
        # When the client finally reads, it gets what was sent before the cut, then RESOURCE_EXHAUSTED.
        got = 0
        with pytest.raises(grpc.RpcError) as info:
            for msg in call:
                got += len(msg.token_ids)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, info.value
        assert cause in info.value.details()
        assert 0 < got < 900
    finally:
        channel.close()
    assert d.wait_metric("moed_requests_total", 1, status="resource_exhausted") == 1
    assert d.metrics().get("moed_requests_total", status="ok") == 0  # nothing counted as delivered
    if cause == "--stream-buffer-bytes":
        # A reading client is unaffected: its whole output (50 × ~250 bytes) could never exceed the budget.
        c = d.client.complete("Someone reads this", temperature=0, max_tokens=50, ignore_eos=True, logprobs=20,
                              timeout=60)
        assert c.completion_tokens == 50


def test_scrape_is_fast_with_50_idle_connections_and_a_slowloris_open(daemon):
    import socket
    import urllib.request

    host, port = daemon.metrics_url.split("//")[1].split("/")[0].rsplit(":", 1)
    idle = [socket.create_connection((host, int(port)), timeout=10) for _ in range(50)]
    slow = socket.create_connection((host, int(port)), timeout=10)
    slow.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # and then one header byte at a time
    try:
        for i in range(5):
            slow.sendall(b"X")
            start = time.monotonic()
            with urllib.request.urlopen(daemon.metrics_url, timeout=10) as r:
                assert r.status == 200 and b"moed_requests_total" in r.read()
            assert time.monotonic() - start < 1.0
        with urllib.request.urlopen(daemon.metrics_url.replace("/metrics", "/"), timeout=10) as r:
            assert r.status == 200 and b"/metrics" in r.read()
    finally:
        for s in idle + [slow]:
            s.close()


def test_version_help_and_the_default_model_from_any_directory(tmp_path):
    import re
    import signal
    import subprocess

    from moed_harness import binary

    moed = str(binary("moed"))
    v = subprocess.run([moed, "--version"], capture_output=True, text=True, timeout=30)
    assert v.returncode == 0 and re.fullmatch(r"moed \d+\.\d+\.\d+ \(revision \S+\)\n", v.stdout), v.stdout
    h = subprocess.run([moed, "--help"], capture_output=True, text=True, timeout=30)
    assert h.returncode == 0 and "--stream-stall-timeout" in h.stdout and "MOED_AUTH_TOKEN_FILE" in h.stdout
    # No --model, started from a directory with no models/ in it: the built-in model next to the binary.
    proc = subprocess.Popen([moed, "--host", "127.0.0.1", "--port", "0", "--metrics-port", "0", "--backend", "cpu"],
                            cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        assert "moed: serving fortune-moe" in line, line
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
