"""Generation through the daemon: greedy parity with moe-run under 64 concurrent streams (Python and
C++ clients), streaming text, finish reasons, usage, stop strings, logprobs and routing."""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from moed_harness import binary, model_config, moe_run, pb, run_tool

_STARTS = ["Never trust a computer", "The best way to predict the future", "A fool and his money",
           "Life is what happens", "You will meet a tall", "There is no such thing as", "Beware of",
           "It is a truth universally", "The early bird", "Time flies like", "To be or not to be",
           "Love is", "Never put off until tomorrow", "When in doubt", "Your lucky number is", "Q: Why"]
_ENDS = ["", " today", ", said the", " and then"]
PROMPTS = [s + e for e in _ENDS for s in _STARTS]  # 64 distinct prompts


def max_tokens_for(i: int) -> int:
    return 6 + (i * 7) % 35  # 6..40, varied so that streams leave the batch at different steps


@pytest.fixture(scope="module")
def references():
    """moe-run's greedy output for every prompt, two processes at a time."""
    with ThreadPoolExecutor(2) as pool:
        refs = list(pool.map(lambda i: moe_run(PROMPTS[i], max_tokens_for(i)), range(len(PROMPTS))))
    return refs


def expected_finish(ref: dict, max_tokens: int) -> str:
    return "length" if len(ref["output_ids"]) >= max_tokens else "eos"


def test_64_concurrent_python_streams_equal_moe_run(daemon, references):
    def one(i):
        return daemon.client.complete(PROMPTS[i], temperature=0, max_tokens=max_tokens_for(i), timeout=120)

    with ThreadPoolExecutor(len(PROMPTS)) as pool:
        results = list(pool.map(one, range(len(PROMPTS))))
    for i, (c, ref) in enumerate(zip(results, references)):
        where = f"prompt {i} {PROMPTS[i]!r}"
        assert c.token_ids == ref["output_ids"], where
        assert c.text == ref["text"], where
        assert c.finish_reason == expected_finish(ref, max_tokens_for(i)), where
        assert c.prompt_tokens == len(ref["prompt_ids"]), where
        assert c.completion_tokens == len(c.token_ids), where


def test_moectl_generate_json_equals_moe_run(daemon, references):
    picks = [0, 5, 17, 42, 63]
    procs = {i: subprocess.Popen([str(binary("moectl")), "--addr", daemon.addr, "generate", PROMPTS[i],
                                  "--max-tokens", str(max_tokens_for(i)), "--temperature", "0", "--json"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in picks}
    for i, p in procs.items():
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        got = json.loads(out)
        ref = references[i]
        assert got["token_ids"] == ref["output_ids"], PROMPTS[i]
        assert got["text"] == ref["text"], PROMPTS[i]
        assert got["finish_reason"] == expected_finish(ref, max_tokens_for(i))
        assert got["usage"] == {"prompt_tokens": len(ref["prompt_ids"]), "completion_tokens": len(ref["output_ids"]),
                                "cached_tokens": 0}  # prompts shorter than one KV block: nothing to cache


def test_moectl_streams_plain_text(daemon, references):
    out = run_tool("moectl", ["--addr", daemon.addr, "generate", PROMPTS[0], "--max-tokens",
                              str(max_tokens_for(0)), "--temperature", "0"])
    assert out.returncode == 0, out.stderr
    assert out.stdout == references[0]["text"] + "\n"


def test_python_client_cli_streams_text(daemon, references):
    import sys

    out = subprocess.run([sys.executable, "-m", "moed_client", "--addr", daemon.addr,
                          "generate", PROMPTS[3], "--max-tokens", str(max_tokens_for(3)), "--temperature", "0"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout == references[3]["text"] + "\n"


def test_length_finish_and_usage(daemon):
    prompt = "The cat sat on"
    c = daemon.client.complete(prompt, temperature=0, max_tokens=7, ignore_eos=True, timeout=60)
    assert c.finish_reason == "length"
    assert len(c.token_ids) == c.completion_tokens == 7
    assert c.prompt_tokens == len(daemon.client.tokenize(prompt))
    assert c.request_id  # the server names requests that came without an id


def test_stop_string_ends_generation_and_is_not_emitted(daemon):
    prompt = PROMPTS[1]
    ref = moe_run(prompt, 40)
    text = ref["text"]
    # A stop string that first occurs after some text: 3 characters starting a third of the way in.
    start = next(i for i in range(max(1, len(text) // 3), len(text) - 3) if text.find(text[i:i + 3]) == i)
    stop = text[start:start + 3]
    c = daemon.client.complete(prompt, temperature=0, max_tokens=40, stop=[stop], timeout=60)
    assert c.finish_reason == "stop"
    assert c.text == text[:start]
    assert stop not in c.text


def test_stream_chunks_are_whole_utf8_and_join_to_the_text(daemon):
    # High temperature over a 4096-token vocabulary with 256 byte-fallback tokens: the stream meets
    # byte pieces that only form characters together. Python's protobuf refuses to parse a string
    # field holding a partial UTF-8 sequence, so every chunk reaching here was whole characters.
    for seed in range(3):
        req = dict(temperature=1.6, seed=seed, max_tokens=64, ignore_eos=True, timeout=60)
        c = daemon.client.complete("Ünïcödé snow ☃ and 日本語: ", **req)
        assert c.finish_reason == "length" and len(c.token_ids) == 64
        assert "".join(c.chunks) == c.text
        for chunk in c.chunks:
            assert chunk.encode("utf-8").decode("utf-8") == chunk
        again = daemon.client.complete("Ünïcödé snow ☃ and 日本語: ", **req)
        assert again.token_ids == c.token_ids and again.text == c.text  # same seed, same output


def test_non_ascii_prompt_greedy_equals_moe_run(daemon):
    prompt = "Café crème — naïve señor’s “quote” ☃"
    ref = moe_run(prompt, 24)
    c = daemon.client.complete(prompt, temperature=0, max_tokens=24, timeout=60)
    assert c.token_ids == ref["output_ids"]
    assert c.text == ref["text"]
    assert "".join(c.chunks) == c.text


def test_include_routing_counts_every_processed_token(daemon):
    cfg = model_config()
    layers, experts, top_k = cfg["num_hidden_layers"], cfg["num_local_experts"], cfg["num_experts_per_tok"]
    c = daemon.client.complete("Routing, routing, routing", temperature=0, max_tokens=9, ignore_eos=True,
                               include_routing=True, timeout=60)
    assert sorted(c.routing) == list(range(layers))
    # Every prompt token and every generated token but the last runs through the model once.
    processed = c.prompt_tokens + c.completion_tokens - 1
    for layer, counts in c.routing.items():
        assert all(0 <= e < experts for e in counts), counts
        assert all(n > 0 for n in counts.values()), counts
        assert sum(counts.values()) == processed * top_k, f"layer {layer}: {counts}"
    plain = daemon.client.complete("Routing, routing, routing", temperature=0, max_tokens=9, ignore_eos=True)
    assert plain.routing == {}


def test_logprobs_one_per_token_best_first(daemon):
    c = daemon.client.complete("Fortune favours", temperature=0, max_tokens=6, ignore_eos=True, logprobs=3,
                               timeout=60)
    assert len(c.logprobs) == len(c.token_ids) == 6
    for tok, lp in zip(c.token_ids, c.logprobs):
        assert lp.token_id == tok
        assert len(lp.top) == 3
        tops = [t.logprob for t in lp.top]
        assert tops == sorted(tops, reverse=True) and all(t <= 0 for t in tops)
        assert lp.top[0].token_id == tok  # greedy picks the best alternative
        assert abs(lp.logprob - lp.top[0].logprob) < 1e-5


def test_seeded_sampling_is_independent_of_the_batch(daemon):
    req = dict(temperature=0.9, top_p=0.95, top_k=50, seed=1234, max_tokens=20, ignore_eos=True, timeout=60)
    alone = daemon.client.complete("A seeded fortune", **req)
    with ThreadPoolExecutor(8) as pool:
        noise = [pool.submit(daemon.client.complete, p, temperature=1.0, max_tokens=30, timeout=60)
                 for p in PROMPTS[:7]]
        crowded = pool.submit(daemon.client.complete, "A seeded fortune", **req).result()
        for f in noise:
            f.result()
    assert crowded.token_ids == alone.token_ids
    assert crowded.text == alone.text


def test_prompt_ids_request_equals_text_request(daemon, references):
    ref = references[9]
    c = daemon.client.complete(prompt_ids=ref["prompt_ids"], temperature=0, max_tokens=max_tokens_for(9), timeout=60)
    assert c.token_ids == ref["output_ids"]
    assert c.text == ref["text"]
