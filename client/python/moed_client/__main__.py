"""`python -m moed_client` (or `moed-client`): generate, tokenize, info and health against a moed daemon over gRPC.

    python -m moed_client --addr 127.0.0.1:50051 generate "Never trust a computer" --max-tokens 32
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence

import grpc

from moed_client import MoedClient


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="moed_client", description="moed client (gRPC)")
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
    sys.exit(main())
