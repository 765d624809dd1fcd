"""Cancellation: streams cancelled by the client or whose client process dies leave the batch, free
their KV blocks (the running and KV gauges return to 0), and other streams finish unaffected."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import grpc

from moed_harness import moe_run
from moed_client import make_request

OTHERS = ["Meanwhile the others", "Unaffected by it all", "Keep calm and"]
OTHER_TOKENS = 200


def start_others(daemon):
    results = {}

    def run(p):
        results[p] = daemon.client.complete(p, temperature=0, max_tokens=OTHER_TOKENS, timeout=120)

    threads = [threading.Thread(target=run, args=(p,)) for p in OTHERS]
    for t in threads:
        t.start()
    return threads, results


def check_others(threads, results):
    for t in threads:
        t.join(timeout=120)
    for p in OTHERS:
        ref = moe_run(p, OTHER_TOKENS)
        assert p in results, f"stream {p!r} failed"
        assert results[p].token_ids == ref["output_ids"], p
        assert results[p].text == ref["text"], p


def assert_idle(daemon):
    running = daemon.wait_metric("moed_requests_running", 0)
    kv = daemon.wait_metric("moed_kv_cache_usage_ratio", 0)
    assert running == 0 and kv == 0, f"running={running} kv={kv}\n{daemon.log_tail()}"


def test_client_cancel_mid_stream_frees_the_sequence(daemon):
    for p in OTHERS:
        moe_run(p, OTHER_TOKENS)  # references first, so the daemon runs alone on the CPU below
    before = daemon.metrics().get("moed_requests_total", status="cancelled")
    threads, results = start_others(daemon)
    victims = [daemon.client.generate_stream(make_request(f"Cancel me {i}", temperature=0, max_tokens=500,
                                                          ignore_eos=True), timeout=120) for i in range(4)]
    for call in victims:
        for _, _msg in zip(range(3), call):
            pass
        call.cancel()
    for call in victims:
        try:
            for _ in call:
                pass
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.CANCELLED
    # Within a few engine steps only the others can still be running.
    deadline = time.monotonic() + 5
    while daemon.metrics().get("moed_requests_running") > len(OTHERS) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert daemon.metrics().get("moed_requests_running") <= len(OTHERS)
    check_others(threads, results)
    assert_idle(daemon)
    assert daemon.wait_metric("moed_requests_total", before + 4, status="cancelled") == before + 4


# A client process that opens a stream it cannot be delivered (a small receive window, ~250-byte messages),
# says so after the first message, then sleeps: its call cannot end by itself, whatever the machine's speed.
VICTIM = r"""
import sys, time, grpc
from moed_client import make_request, moed_pb2_grpc
ch = grpc.insecure_channel(sys.argv[1], options=[("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 1024)])
it = iter(moed_pb2_grpc.MoedStub(ch).Generate(make_request("Kill the client", temperature=0, max_tokens=900,
                                                             ignore_eos=True, logprobs=20, request_id="victim")))
next(it)
print("started", flush=True)
time.sleep(600)
"""


def test_killed_client_process_frees_the_sequence(make_daemon):
    d = make_daemon("--max-logprobs", "20")
    threads, results = start_others(d)
    proc = subprocess.Popen([sys.executable, "-c", VICTIM, d.addr], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "started", proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()
    check_others(threads, results)
    assert_idle(d)
    # The victim is counted once, as cancelled, and its log line shows it never got its 900 tokens.
    assert d.wait_metric("moed_requests_total", 1, status="cancelled") == 1
    assert d.wait_metric("moed_streams_open", 0) == 0
    lines = [ln for ln in d.log().splitlines() if "id=victim" in ln]
    assert len(lines) == 1 and "status=CANCELLED" in lines[0], lines
    delivered = int(lines[0].split("completion_tokens=")[1].split()[0])
    assert 0 < delivered < 900, lines[0]
