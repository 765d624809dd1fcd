"""moed's Python client (grpcio): streaming Generate, Tokenize, GetModelInfo, GetExpertStats, health.

The gRPC stubs (`moed.v1.moed_pb2`, `moed_pb2_grpc`) are generated from proto/moed/v1/moed.proto when the package
is built (setup.py) and installed with it. Command line: `python -m moed_client --help`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Iterator, Optional, Sequence

import grpc

from moed.v1 import moed_pb2, moed_pb2_grpc  # generated when the package is built

pb = moed_pb2


@dataclass
class Completion:
    """A finished Generate stream, assembled from its messages."""
    text: str = ""
    token_ids: list[int] = field(default_factory=list)
    chunks: list[str] = field(default_factory=list)      # the text of each message, in order
    finish_reason: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0                                # prompt tokens served from the prefix cache
    routing: dict[int, dict[int, int]] = field(default_factory=dict)  # layer → {expert: tokens}
    logprobs: list = field(default_factory=list)          # TokenLogprob messages, one per token
    request_id: str = ""
    messages: int = 0


def make_request(prompt: Optional[str] = None, prompt_ids: Optional[Sequence[int]] = None, *,
                 max_tokens: Optional[int] = None, temperature: Optional[float] = None,
                 top_p: Optional[float] = None, top_k: int = 0, seed: Optional[int] = None,
                 stop: Iterable[str] = (), ignore_eos: bool = False, logprobs: int = 0,
                 include_routing: bool = False, priority: int = 0, request_id: str = "") -> pb.GenerateRequest:
    """A GenerateRequest; values pass unchecked so that the server's validation is what decides."""
    sampling = pb.SamplingParams(top_k=top_k, stop=list(stop), ignore_eos=ignore_eos, logprobs=logprobs)
    if max_tokens is not None:
        sampling.max_tokens = max_tokens
    if temperature is not None:
        sampling.temperature = temperature
    if top_p is not None:
        sampling.top_p = top_p
    if seed is not None:
        sampling.seed = seed
    req = pb.GenerateRequest(request_id=request_id, sampling=sampling, priority=priority,
                             include_routing=include_routing)
    if prompt is not None:
        req.prompt = prompt
    if prompt_ids is not None:
        req.prompt_ids.extend(prompt_ids)
    return req


def collect(stream: Iterable[pb.GenerateResponse]) -> Completion:
    """Drains a Generate stream into a Completion (raises grpc.RpcError on a failed call)."""
    c = Completion()
    for msg in stream:
        c.messages += 1
        c.chunks.append(msg.text)
        c.text += msg.text
        c.token_ids.extend(msg.token_ids)
        c.logprobs.extend(msg.logprobs)
        c.request_id = msg.request_id or c.request_id
        if msg.finish_reason:
            c.finish_reason = msg.finish_reason
        if msg.HasField("usage"):
            c.prompt_tokens = msg.usage.prompt_tokens
            c.completion_tokens = msg.usage.completion_tokens
            c.cached_tokens = msg.usage.cached_tokens
        for layer in msg.routing:
            c.routing[layer.layer] = dict(zip(layer.expert_ids, layer.token_counts))
    return c


class MoedClient:
    """A connection to one moed daemon. Thread-safe: gRPC channels and stubs may be shared."""

    def __init__(self, addr: str = "127.0.0.1:50051"):
        self.addr = addr
        self.channel = grpc.insecure_channel(addr, options=[
            ("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)])
        self.stub = moed_pb2_grpc.MoedStub(self.channel)

    def __enter__(self) -> "MoedClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.channel.close()

    def generate_stream(self, request: pb.GenerateRequest, timeout: Optional[float] = None):
        """The raw call: iterate it for GenerateResponse messages; .cancel() ends it early."""
        return self.stub.Generate(request, timeout=timeout)

    def generate(self, prompt: Optional[str] = None, *, timeout: Optional[float] = None,
                 **kwargs) -> Iterator[pb.GenerateResponse]:
        """Streams the completion of `prompt` (or prompt_ids=[...]); kwargs as make_request."""
        return self.generate_stream(make_request(prompt, **kwargs), timeout=timeout)

    def complete(self, prompt: Optional[str] = None, *, timeout: Optional[float] = None, **kwargs) -> Completion:
        """The whole completion at once."""
        return collect(self.generate(prompt, timeout=timeout, **kwargs))

    def tokenize(self, text: str, timeout: Optional[float] = None) -> list[int]:
        return list(self.stub.Tokenize(pb.TokenizeRequest(text=text), timeout=timeout).token_ids)

    def info(self, timeout: Optional[float] = None) -> pb.ModelInfo:
        return self.stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=timeout)

    def expert_stats(self, timeout: Optional[float] = None) -> pb.ExpertStats:
        return self.stub.GetExpertStats(pb.GetExpertStatsRequest(), timeout=timeout)

    def health(self, service: str = "", timeout: Optional[float] = None) -> str:
        """grpc.health.v1 status name ("SERVING", "NOT_SERVING", ...); needs grpcio-health-checking."""
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        resp = health_pb2_grpc.HealthStub(self.channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)
