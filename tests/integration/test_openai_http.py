"""The OpenAI-compatible HTTP front (--http-port) through the real `openai` SDK, on a real daemon: greedy output
equals the gRPC front's, streamed chunks join to the whole text (completions and chat), 64 concurrent streams are
all correct, chat renders the template as transformers does, the routing extension, and metrics/logs by front."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import openai
import pytest

from moed_harness import ROOT

MODEL = "fortune-moe"
TEMPLATE = ROOT / "tests" / "fixtures" / "chat_templates" / "mixtral-8x7b-instruct-v0.1.jinja"
GOLDENS = ROOT / "tests" / "fixtures" / "chat_templates" / "goldens" / "mixtral-8x7b-instruct-v0.1.json"


@pytest.fixture(scope="module")
def http(tmp_path_factory):
    from moed_harness import Daemon

    d = Daemon(tmp_path_factory.mktemp("moed-openai"), "--http-port", "-1", "--chat-template", str(TEMPLATE),
               "--max-logprobs", "5").start()
    assert d.http_addr, d.log_tail()
    yield d
    assert d.stop() == 0, d.log_tail()


def sdk(d, **kwargs) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"http://{d.http_addr}/v1", api_key="unused", max_retries=0, timeout=60, **kwargs)


def test_greedy_completion_equals_grpc(http):
    ref = http.client.complete("Once upon a time", temperature=0, max_tokens=24, ignore_eos=True)
    out = sdk(http).completions.create(model=MODEL, prompt="Once upon a time", max_tokens=24, temperature=0,
                                       extra_body={"ignore_eos": True})
    assert out.choices[0].text == ref.text
    assert out.choices[0].finish_reason == "length"
    assert out.usage.prompt_tokens == ref.prompt_tokens
    assert out.usage.completion_tokens == ref.completion_tokens == 24
    assert out.usage.total_tokens == ref.prompt_tokens + 24
    assert out.model == MODEL and out.object == "text_completion"


def test_token_id_prompt_and_logprobs_equal_grpc(http):
    ids = http.client.tokenize("The king said")
    ref = http.client.complete(prompt_ids=ids, temperature=0, max_tokens=12, ignore_eos=True, logprobs=3)
    out = sdk(http).completions.create(model=MODEL, prompt=ids, max_tokens=12, temperature=0, logprobs=3,
                                       extra_body={"ignore_eos": True})
    lp = out.choices[0].logprobs
    assert out.choices[0].text == ref.text
    assert len(lp.tokens) == 12 and len(lp.top_logprobs[0]) == 3
    assert lp.token_logprobs == pytest.approx([x.logprob for x in ref.logprobs], abs=1e-6)
    offsets = [0]
    for t in lp.tokens[:-1]:
        offsets.append(offsets[-1] + len(t.encode()))
    assert lp.text_offset == offsets


def test_stream_joins_to_the_whole_completion(http):
    kw = dict(model=MODEL, prompt="A fox and a crow", max_tokens=40, temperature=0, extra_body={"ignore_eos": True})
    whole = sdk(http).completions.create(**kw)
    chunks = list(sdk(http).completions.create(stream=True, stream_options={"include_usage": True}, **kw))
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == whole.choices[0].text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 40
    assert chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens
    assert all(c.usage is None for c in chunks[:-1])


def test_stop_string_cuts_text_and_finishes_with_stop(http):
    full = sdk(http).completions.create(model=MODEL, prompt="Once upon a time", max_tokens=40, temperature=0,
                                        extra_body={"ignore_eos": True}).choices[0].text
    stop = full[10:14]
    cut = sdk(http).completions.create(model=MODEL, prompt="Once upon a time", max_tokens=40, temperature=0,
                                       stop=[stop], extra_body={"ignore_eos": True}).choices[0]
    assert cut.finish_reason == "stop"
    assert cut.text == full[:full.index(stop)]


def test_n_choices_and_echo(http):
    out = sdk(http).completions.create(model=MODEL, prompt="Hello", max_tokens=8, n=3, temperature=1.0, seed=7,
                                       echo=True, extra_body={"ignore_eos": True})
    assert [c.index for c in out.choices] == [0, 1, 2]
    assert all(c.text.startswith("Hello") for c in out.choices)
    assert out.usage.completion_tokens == 24
    # Each choice is its own request with its own seed: seed 7 makes them reproducible.
    again = sdk(http).completions.create(model=MODEL, prompt="Hello", max_tokens=8, n=3, temperature=1.0, seed=7,
                                         echo=True, extra_body={"ignore_eos": True})
    assert [c.text for c in again.choices] == [c.text for c in out.choices]


def test_64_concurrent_streams_are_all_correct(http):
    prompts = [f"Story number {i % 8}" for i in range(64)]
    refs = {p: http.client.complete(p, temperature=0, max_tokens=16, ignore_eos=True).text for p in set(prompts)}

    async def one(client, p):
        stream = await client.completions.create(model=MODEL, prompt=p, max_tokens=16, temperature=0, stream=True,
                                                 extra_body={"ignore_eos": True})
        return "".join([c.choices[0].text async for c in stream if c.choices])

    async def run():
        client = openai.AsyncOpenAI(base_url=f"http://{http.http_addr}/v1", api_key="unused", max_retries=0,
                                    timeout=120)
        async with client:
            return await asyncio.gather(*(one(client, p) for p in prompts))

    texts = asyncio.run(run())
    assert [t == refs[p] for t, p in zip(texts, prompts)] == [True] * 64


def golden_case():
    cases = json.loads(GOLDENS.read_text())["cases"]
    return next(c for c in cases if "error" not in c and len(c["messages"]) >= 3 and c["add_generation_prompt"])


def test_chat_renders_the_template_as_transformers(http):
    case = golden_case()
    # transformers' rendering, tokenized as apply_chat_template does (no second BOS): the completion of exactly
    # those tokens is what the chat endpoint must produce.
    ids = http.client.tokenize(case["expected"])
    assert ids[0] == ids[1], "the rendering starts with the BOS text, after the tokenizer's own BOS"
    ids = ids[1:]
    ref = sdk(http).completions.create(model=MODEL, prompt=ids, max_tokens=20, temperature=0,
                                       extra_body={"ignore_eos": True})
    chat = sdk(http).chat.completions.create(model=MODEL, messages=case["messages"], max_tokens=20, temperature=0,
                                             extra_body={"ignore_eos": True})
    assert chat.usage.prompt_tokens == len(ids)
    assert chat.choices[0].message.content == ref.choices[0].text
    assert chat.choices[0].message.role == "assistant" and chat.object == "chat.completion"


def test_chat_stream_joins_and_logprobs(http):
    messages = [{"role": "user", "content": "Tell me a fortune."}]
    kw = dict(model=MODEL, messages=messages, max_completion_tokens=30, temperature=0, logprobs=True,
              top_logprobs=2, extra_body={"ignore_eos": True})
    whole = sdk(http).chat.completions.create(**kw)
    chunks = list(sdk(http).chat.completions.create(stream=True, **kw))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == whole.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == "length"
    content = whole.choices[0].logprobs.content
    assert len(content) == 30 and all(len(t.top_logprobs) == 2 for t in content)
    assert all(t.top_logprobs[0].logprob >= t.logprob - 1e-6 for t in content)  # greedy: the top one was taken


def test_routing_extension(http):
    out = sdk(http).completions.create(model=MODEL, prompt="Routing", max_tokens=5, temperature=0,
                                       extra_body={"ignore_eos": True, "moed": {"include_routing": True}})
    routing = out.choices[0].model_extra["moed"]["routing"]
    info = http.client.info()
    assert len(routing) == info.num_layers
    # Every token routed in every layer picks top_k experts: prompt + generated tokens (the last is not fed back).
    total = out.usage.prompt_tokens + 5 - 1
    assert all(sum(layer["token_counts"]) == total * info.top_k for layer in routing)


def test_models_health_and_unknown_path(http):
    models = sdk(http).models.list()
    assert [m.id for m in models.data] == [MODEL]
    assert sdk(http).models.retrieve(MODEL).id == MODEL
    with pytest.raises(openai.NotFoundError):
        sdk(http).models.retrieve("gpt-9")
    import urllib.error
    import urllib.request
    with urllib.request.urlopen(f"http://{http.http_addr}/health", timeout=5) as r:
        assert r.status == 200 and json.loads(r.read()) == {"status": "ok"}
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"http://{http.http_addr}/v2/nothing", timeout=5)
    assert e.value.code == 404
    assert json.loads(e.value.read())["error"]["type"] == "not_found_error"


def test_requests_are_counted_and_logged_by_front(http):
    before = http.metrics().get("moed_requests_total", front="http", status="ok")
    sdk(http).completions.create(model=MODEL, prompt="Count me", max_tokens=2, n=2)
    assert http.wait_metric("moed_requests_total", before + 2, front="http", status="ok") == before + 2
    assert http.metrics().get("moed_requests_total", front="grpc", status="ok") >= 1
    lines = [line for line in http.log().splitlines() if "request finished" in line and "front=http" in line]
    assert lines and "completion_tokens=2" in lines[-1]
