"""Cancellation: streams cancelled by the client or whose client process dies leave the batch, free
their KV blocks (the running and KV gauges return to 0), and other streams finish unaffected."""

from __future__ import annotations

import subprocess
import threading
import time

import grpc

from moed_harness import binary, moe_run
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


def test_killed_moectl_process_frees_the_sequence(daemon):
    threads, results = start_others(daemon)
    proc = subprocess.Popen([str(binary("moectl")), "--addr", daemon.addr, "generate", "Kill the client",
                             "--max-tokens", "900", "--ignore-eos", "--temperature", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # Streaming: text arrives long before the 900 tokens are done.
    first = proc.stdout.read(8)
    assert first, proc.stderr.read().decode(errors="replace")
    proc.kill()
    proc.wait()
    check_others(threads, results)
    assert_idle(daemon)
