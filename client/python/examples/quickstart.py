"""moed from Python both ways: gRPC with moed_client, then the OpenAI API with the `openai` SDK (moed --http-port).

    pip install "./client/python[openai]"
    build/moed --model models/fortune-moe --port 50051 --http-port 8000
    python client/python/examples/quickstart.py --grpc 127.0.0.1:50051 --http http://127.0.0.1:8000
Leave out --http to skip the OpenAI path. With moed --auth-token-file, pass the token as MOED_API_KEY.
"""

import argparse
import os

from moed_client import MoedClient

PROMPT = "Never trust a computer"


def grpc_path(addr: str) -> None:
    """Streams a greedy completion over gRPC, then shows its usage and the served model."""
    with MoedClient(addr) as client:
        info = client.info()
        print(f"[gRPC {addr}] {info.family} model {info.model}: {info.num_layers} layers, {info.num_experts} experts")
        last = None
        for msg in client.generate(PROMPT, max_tokens=24, temperature=0, timeout=60):
            print(msg.text, end="", flush=True)
            last = msg
        print(f"\n  finish={last.finish_reason} prompt_tokens={last.usage.prompt_tokens} "
              f"completion_tokens={last.usage.completion_tokens}")


def openai_path(base_url: str) -> None:
    """The same completion through the OpenAI SDK: streamed, then once more with moed's routing extension."""
    from openai import OpenAI  # pip install "moed-client[openai]"

    client = OpenAI(base_url=f"{base_url.rstrip('/')}/v1", api_key=os.environ.get("MOED_API_KEY", "none"))
    model = client.models.list().data[0].id
    print(f"[OpenAI {base_url}] model={model}")
    for chunk in client.completions.create(model=model, prompt=PROMPT, max_tokens=24, temperature=0, stream=True):
        if chunk.choices:
            print(chunk.choices[0].text, end="", flush=True)
    print()
    full = client.completions.create(model=model, prompt=PROMPT, max_tokens=24, temperature=0,
                                     extra_body={"moed": {"include_routing": True}})
    choice = full.choices[0]
    routing = (choice.model_extra or {}).get("moed", {}).get("routing", [])  # per layer: expert ids, token counts
    print(f"  finish={choice.finish_reason} prompt_tokens={full.usage.prompt_tokens} "
          f"completion_tokens={full.usage.completion_tokens}")
    for layer in routing[:2]:
        print(f"  layer {layer['layer']}: tokens per expert "
              f"{dict(zip(layer['expert_ids'], layer['token_counts']))}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grpc", default="127.0.0.1:50051", help="moed's gRPC address")
    ap.add_argument("--http", default=None, help="moed's HTTP base URL (moed --http-port), e.g. http://127.0.0.1:8000")
    args = ap.parse_args()
    grpc_path(args.grpc)
    if args.http:
        openai_path(args.http)


if __name__ == "__main__":
    main()
