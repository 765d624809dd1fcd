"""SIGTERM drain: health goes NOT_SERVING, new calls get UNAVAILABLE, streams in flight finish in
full, and the daemon exits with code 0."""

from __future__ import annotations

import signal
import threading

import grpc
import pytest

from moed_client import MoedClient, collect, make_request, moed_pb2_grpc
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


def paused_streams(d, n: int):
    """n Generate streams whose client stops reading after the first message: a small receive window (no BDP
    growth) and ~250-byte messages (20 logprobs) mean they cannot be delivered until the client reads on, so
    they stay open whatever the machine's speed. Returns (channel, [(first message, iterator)])."""
    channel = grpc.insecure_channel(d.addr, options=[("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 1024)])
    stub = moed_pb2_grpc.MoedStub(channel)
    streams = []
    for i in range(n):
        it = iter(stub.Generate(make_request(f"Paused reader {i}", temperature=0, max_tokens=TOKENS, ignore_eos=True,
                                             logprobs=20), timeout=120))
        streams.append((next(it), it))
    assert d.wait_metric("moed_streams_open", n, timeout=30) == n
    return channel, streams


def test_health_is_not_serving_not_unavailable_during_the_drain(make_daemon):
    d = make_daemon("--shutdown-timeout", "60s", "--max-logprobs", "20")
    channel, streams = paused_streams(d, 2)
    d.signal(signal.SIGTERM)
    d.wait_health("NOT_SERVING", timeout=5)
    # The engine is done with them; their output waits for the clients, and so does the drain.
    assert d.wait_metric("moed_requests_running", 0, timeout=60) == 0
    assert d.metrics().get("moed_streams_open") == 2
    # Until the streams end, health answers (it is not refused): NOT_SERVING, every time.
    seen = [d.health(timeout=5) for _ in range(10)]
    assert set(seen) == {"NOT_SERVING"}, seen
    # Reading on, the clients get every token: the drain waited for delivery, not only for the engine.
    for first, it in streams:
        c = collect([first, *it])
        assert c.finish_reason == "length" and c.completion_tokens == TOKENS
    channel.close()
    assert d.proc.wait(timeout=60) == 0, d.log_tail()


def test_sigint_drains_like_sigterm(make_daemon):
    d = make_daemon("--max-logprobs", "20")
    channel, streams = paused_streams(d, 2)
    d.signal(signal.SIGINT)
    d.wait_health("NOT_SERVING", timeout=5)
    for first, it in streams:
        assert collect([first, *it]).completion_tokens == TOKENS
    channel.close()
    assert d.proc.wait(timeout=60) == 0, d.log_tail()


def test_streams_that_outlive_the_shutdown_timeout_end_unavailable(make_daemon):
    d = make_daemon("--shutdown-timeout", "0s", "--max-logprobs", "20")
    channel, streams = paused_streams(d, 2)
    d.signal(signal.SIGTERM)
    for first, it in streams:
        got = len(first.token_ids)
        with pytest.raises(grpc.RpcError) as info:
            for msg in it:
                got += len(msg.token_ids)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE, info.value
        assert "--shutdown-timeout=0" in info.value.details(), info.value.details()
        assert got < TOKENS
    channel.close()
    assert d.proc.wait(timeout=60) == 0, d.log_tail()
    assert d.log().count("status=UNAVAILABLE") == 2, d.log_tail()


def test_a_second_signal_exits_at_once(make_daemon):
    d = make_daemon("--shutdown-timeout", "600s", "--max-logprobs", "20")
    channel, streams = paused_streams(d, 1)  # holds the drain open for its 600 s
    d.signal(signal.SIGTERM)
    d.wait_health("NOT_SERVING", timeout=5)
    d.signal(signal.SIGTERM)
    assert d.proc.wait(timeout=10) == 128 + signal.SIGTERM, d.log_tail()
    assert "second signal" in d.log()
    channel.close()
