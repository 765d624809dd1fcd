"""SIGTERM drain: health goes NOT_SERVING, new calls get UNAVAILABLE, streams in flight finish in
full, and the daemon exits with code 0."""

from __future__ import annotations

import signal
import threading

import grpc

from moed_client import MoedClient, collect, make_request
from moed_harness import rpc_error

TOKENS = 800


def test_sigterm_drains_in_flight_streams_then_exits_0(make_daemon):
    d = make_daemon()
    results, errors = {}, {}
    started = threading.Barrier(5)

    def run(i):
        call = d.client.generate_stream(make_request(f"Draining {i}", temperature=0, max_tokens=TOKENS,
                                                     ignore_eos=True), timeout=120)
        it = iter(call)
        first = next(it)  # the stream is in flight
        started.wait(timeout=30)
        try:
            results[i] = collect([first, *it])
        except grpc.RpcError as e:
            errors[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    started.wait(timeout=30)
    d.signal(signal.SIGTERM)
    d.wait_health("NOT_SERVING", timeout=5)
    with MoedClient(d.addr) as late:
        err = rpc_error(lambda: collect(late.generate("Too late", max_tokens=2, timeout=10)))
    assert err.code() == grpc.StatusCode.UNAVAILABLE, err
    for t in threads:
        t.join(timeout=120)
    assert not errors, {i: (e.code(), e.details()) for i, e in errors.items()}
    assert sorted(results) == [0, 1, 2, 3]
    for c in results.values():
        assert c.finish_reason == "length" and c.completion_tokens == TOKENS
    assert d.proc.wait(timeout=60) == 0, d.log_tail()
