"""Admission and deadlines on a daemon with one running sequence and a queue of two: overflow gets
RESOURCE_EXHAUSTED (counted as queue_full), deadlines give DEADLINE_EXCEEDED, and a request whose
deadline passes while queued is never prefilled.

No assumption about the machine's speed: --min-step-time 10ms makes every engine step take at least 10 ms, so a
LONG-token request stays in the batch for at least LONG x 10 ms = 3 s on any machine, far longer than the client
needs to submit what follows it."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from moed_client import collect, make_request, moed_pb2_grpc

FLAGS = ("--max-queue", "2", "--max-running-seqs", "1", "--max-logprobs", "20", "--min-step-time", "10ms")
LONG = 300  # tokens: at least 300 steps x 10 ms = 3 s in the batch, whatever the machine


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    from moed_harness import Daemon

    d = Daemon(tmp_path_factory.mktemp("moed-small"), *FLAGS).start()
    yield d
    assert d.stop() == 0, d.log_tail()


def long_request(i: int):
    return make_request(f"Long request {i}", temperature=0, max_tokens=LONG, ignore_eos=True)


def test_queue_overflow_is_resource_exhausted_and_counted(small):
    before = small.metrics().get("moed_requests_rejected_total", reason="queue_full")

    def one(i):
        try:
            return collect(small.client.generate_stream(long_request(i), timeout=120))
        except grpc.RpcError as e:
            return e

    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(one, range(10)))
    rejected = [r for r in results if isinstance(r, grpc.RpcError)]
    done = [r for r in results if not isinstance(r, grpc.RpcError)]
    assert all(e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED for e in rejected), [e.code() for e in rejected]
    # The first admitted runs for >= 3 s; until then one runs and two wait, and every other one is refused
    # (at Submit, or by the engine's own queue check when two arrived between steps).
    assert len(done) == 3 and len(rejected) == 7, (len(done), len(rejected))
    assert all(c.finish_reason == "length" and c.completion_tokens == LONG for c in done)
    after = small.metrics().get("moed_requests_rejected_total", reason="queue_full")
    assert after - before == len(rejected)


def test_tiny_deadline_is_deadline_exceeded(small):
    # The answer takes >= 3 s to generate (LONG steps of >= 10 ms), and the client reads nothing until its 0.5 s
    # deadline with a small window, so the call cannot complete first, however fast the machine.
    channel = grpc.insecure_channel(small.addr, options=[("grpc.http2.bdp_probe", 0),
                                                         ("grpc.http2.lookahead_bytes", 1024)])
    try:
        call = moed_pb2_grpc.MoedStub(channel).Generate(
            make_request("Too slow", temperature=0, max_tokens=LONG, ignore_eos=True, logprobs=20), timeout=0.5)
        time.sleep(1.0)  # past the deadline, whatever happened meanwhile
        with pytest.raises(grpc.RpcError) as info:
            collect(call)
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    finally:
        channel.close()
    assert small.wait_metric("moed_requests_running", 0) == 0
    assert small.wait_metric("moed_streams_open", 0) == 0


def test_request_expiring_in_the_queue_is_never_prefilled(small):
    prompt_before = small.metrics().get("moed_prompt_tokens_total")
    result = {}

    def run_long():
        result["c"] = collect(small.client.generate_stream(long_request(7), timeout=120))

    t = threading.Thread(target=run_long)
    t.start()
    deadline = time.monotonic() + 10
    while small.metrics().get("moed_requests_running") < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    # 97 ids: a length nothing else in this test has. It waits behind the long stream (>= 3 s in the batch) and
    # expires after 0.1 s.
    queued = make_request(prompt_ids=[1] + [100 + i for i in range(96)], temperature=0, max_tokens=4)
    with pytest.raises(grpc.RpcError) as info:
        collect(small.client.generate_stream(queued, timeout=0.1))
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    t.join(timeout=120)
    assert result["c"].completion_tokens == LONG
    assert small.wait_metric("moed_requests_running", 0) == 0
    prompt_after = small.metrics().get("moed_prompt_tokens_total")
    assert prompt_after - prompt_before == result["c"].prompt_tokens, "the expired request was prefilled"


def test_min_step_time_bounds_a_request_from_below(make_daemon):
    # 10 tokens: a prefill step then 9 decode steps; the last token is delivered only after 9 steps of >= 200 ms
    # each have ended. A lower bound, so it holds on any machine (unthrottled, 10 tokens take milliseconds).
    d = make_daemon("--min-step-time", "200ms")
    start = time.monotonic()
    c = collect(d.client.generate_stream(make_request("Hold on", temperature=0, max_tokens=10, ignore_eos=True),
                                         timeout=60))
    elapsed = time.monotonic() - start
    assert c.completion_tokens == 10
    assert elapsed >= 9 * 0.200, elapsed
