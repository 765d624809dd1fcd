"""Every invalid Generate request gets INVALID_ARGUMENT naming the field, is counted as rejected, and
the daemon keeps streaming to others meanwhile. Limits come from conftest.SHARED_FLAGS."""

from __future__ import annotations

import threading

import grpc
import pytest

from moed_harness import model_config, pb, rpc_error
from moed_client import make_request

CFG = model_config()
VOCAB = CFG["vocab_size"]
CONTEXT = CFG["max_position_embeddings"]


def sampling(**kw) -> pb.GenerateRequest:
    return make_request("A valid prompt", **kw)


# (case name, request, text the error message must contain)
CASES = [
    ("empty prompt", make_request(""), "prompt"),
    ("neither prompt nor ids", pb.GenerateRequest(sampling=pb.SamplingParams(max_tokens=4)), "prompt"),
    ("both prompt and ids", make_request("hello", prompt_ids=[1, 2, 3]), "prompt_ids"),
    ("id equal to vocab", make_request(prompt_ids=[1, VOCAB]), "prompt_ids"),
    ("negative id", make_request(prompt_ids=[1, -5]), "prompt_ids"),
    ("max_tokens zero", sampling(max_tokens=0), "max_tokens"),
    ("max_tokens negative", sampling(max_tokens=-3), "max_tokens"),
    ("max_tokens over the limit", sampling(max_tokens=513), "max_tokens"),
    ("prompt + max_tokens over context", make_request(prompt_ids=[5] * (CONTEXT - 20), max_tokens=40), "max_tokens"),
    ("prompt over context", make_request(prompt_ids=[5] * (CONTEXT + 1)), "prompt"),
    ("negative temperature", sampling(temperature=-0.5), "temperature"),
    ("NaN temperature", sampling(temperature=float("nan")), "temperature"),
    ("top_p zero", sampling(top_p=0.0), "top_p"),
    ("top_p over one", sampling(top_p=1.5), "top_p"),
    ("negative top_k", sampling(top_k=-1), "top_k"),
    ("too many stop strings", sampling(stop=["a", "b", "c", "d", "e"]), "stop"),
    ("too long stop string", sampling(stop=["x" * 17]), "stop"),
    ("logprobs over the limit", sampling(logprobs=6), "logprobs"),
    ("oversized prompt", make_request("y" * 5000), "prompt"),
]


@pytest.fixture(scope="module")
def background_stream(daemon):
    """A long greedy stream running while every invalid request is refused."""
    result = {}

    def run():
        result["completion"] = daemon.client.complete("Meanwhile, elsewhere", temperature=0, max_tokens=300,
                                                      ignore_eos=True, timeout=120)

    t = threading.Thread(target=run)
    t.start()
    yield
    t.join(timeout=120)
    c = result.get("completion")
    assert c is not None, "the background stream failed while invalid requests were refused"
    assert c.finish_reason == "length" and c.completion_tokens == 300


@pytest.mark.parametrize("name,request_msg,field", CASES, ids=[c[0] for c in CASES])
def test_invalid_request_is_refused_naming_the_field(daemon, background_stream, name, request_msg, field):
    before = daemon.metrics().get("moed_requests_rejected_total", front="grpc", reason="invalid_argument")
    err = rpc_error(lambda: list(daemon.client.generate_stream(request_msg, timeout=30)))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, f"{name}: {err.code()} {err.details()}"
    assert field in err.details(), f"{name}: message does not name '{field}': {err.details()!r}"
    after = daemon.metrics().get("moed_requests_rejected_total", front="grpc", reason="invalid_argument")
    assert after == before + 1


def test_message_over_the_grpc_size_limit_is_refused(daemon, background_stream):
    # 8 MiB is over the daemon's receive limit: gRPC itself refuses the message before any handler.
    err = rpc_error(lambda: list(daemon.client.generate_stream(make_request("z" * (8 << 20)), timeout=30)))
    assert err.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED), err
    assert daemon.client.complete("Still alive", temperature=0, max_tokens=3, timeout=30).completion_tokens == 3


def test_moectl_reports_the_status_and_exits_1(daemon):
    from moed_harness import run_tool

    out = run_tool("moectl", ["--addr", daemon.addr, "generate", "hi", "--top-p", "0"])
    assert out.returncode == 1
    assert out.stderr.startswith("moectl: INVALID_ARGUMENT: ") and "top_p" in out.stderr
    usage = run_tool("moectl", ["--addr", daemon.addr, "generate"])
    assert usage.returncode == 2 and "usage:" in usage.stderr
