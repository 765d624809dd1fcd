"""moed example client (Python, grpcio): streaming Generate, Tokenize, GetModelInfo, GetExpertStats, health.

The stubs are generated from proto/moed/v1/moed.proto with grpc_tools.protoc into client/python/_gen
(gitignored) on first import, and again whenever the proto is newer than them.

    python client/python/moed_client.py --addr 127.0.0.1:50051 generate "Never trust a computer"
"""

from __future__ import annotations

import argparse
import importlib.resources
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence

import grpc

_HERE = Path(__file__).resolve().parent
_PROTO_ROOT = _HERE.parent.parent / "proto"
_PROTO = _PROTO_ROOT / "moed" / "v1" / "moed.proto"
GEN_DIR = _HERE / "_gen"


def generate_stubs(force: bool = False) -> Path:
    """Writes moed/v1/moed_pb2.py and moed_pb2_grpc.py under GEN_DIR; returns GEN_DIR.

    Regenerates only when forced or when the proto is newer than the generated module. The new
    tree is written to a temporary folder and renamed into place, so a reader never sees half of it.
    """
    target = GEN_DIR / "moed" / "v1" / "moed_pb2.py"
    if not force and target.exists() and target.stat().st_mtime >= _PROTO.stat().st_mtime:
        return GEN_DIR
    from grpc_tools import protoc  # only needed when (re)generating

    well_known = importlib.resources.files("grpc_tools") / "_proto"
    tmp = Path(tempfile.mkdtemp(prefix="._gen-", dir=_HERE))
    try:
        rc = protoc.main([
            "grpc_tools.protoc", f"-I{_PROTO_ROOT}", f"-I{well_known}",
            f"--python_out={tmp}", f"--grpc_python_out={tmp}", str(_PROTO),
        ])
        if rc != 0:
            raise RuntimeError(f"grpc_tools.protoc failed on {_PROTO} (exit {rc})")
        for pkg in (tmp / "moed", tmp / "moed" / "v1"):
            (pkg / "__init__.py").touch()
        old = None
        if GEN_DIR.exists():
            old = Path(tempfile.mkdtemp(prefix="._old-", dir=_HERE))
            os.rename(GEN_DIR, old / "gen")
        os.rename(tmp, GEN_DIR)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return GEN_DIR


generate_stubs()
if str(GEN_DIR) not in sys.path:
    sys.path.insert(0, str(GEN_DIR))
from moed.v1 import moed_pb2, moed_pb2_grpc  # noqa: E402  (generated just above)

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


def _main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description="moed example client")
    ap.add_argument("--addr", default=os.environ.get("MOECTL_ADDR", "127.0.0.1:50051"))
    ap.add_argument("--timeout", type=float, default=None, help="seconds")
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate", help="stream a completion to stdout")
    g.add_argument("prompt")
    g.add_argument("--max-tokens", type=int)
    g.add_argument("--temperature", type=float)
    g.add_argument("--top-p", type=float)
    g.add_argument("--top-k", type=int, default=0)
    g.add_argument("--seed", type=int)
    g.add_argument("--stop", action="append", default=[])
    g.add_argument("--ignore-eos", action="store_true")
    t = sub.add_parser("tokenize", help="print the token ids of TEXT")
    t.add_argument("text")
    sub.add_parser("info", help="print the served model")
    sub.add_parser("health", help="print the health status")
    args = ap.parse_args(argv)

    with MoedClient(args.addr) as client:
        try:
            if args.cmd == "generate":
                last = None
                for msg in client.generate(args.prompt, timeout=args.timeout, max_tokens=args.max_tokens,
                                           temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
                                           seed=args.seed, stop=args.stop, ignore_eos=args.ignore_eos):
                    sys.stdout.write(msg.text)
                    sys.stdout.flush()
                    last = msg
                sys.stdout.write("\n")
                if last is not None:
                    print(f"[{last.finish_reason}: {last.usage.prompt_tokens} prompt + "
                          f"{last.usage.completion_tokens} completion tokens]", file=sys.stderr)
            elif args.cmd == "tokenize":
                print(" ".join(map(str, client.tokenize(args.text, timeout=args.timeout))))
            elif args.cmd == "info":
                print(client.info(timeout=args.timeout), end="")
            elif args.cmd == "health":
                status = client.health(timeout=args.timeout)
                print(status)
                return 0 if status == "SERVING" else 1
        except grpc.RpcError as e:
            print(f"moed_client: {e.code().name}: {e.details()}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main())
