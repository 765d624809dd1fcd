"""Prefix caching through the daemon (issue 17): usage.cached_tokens, the two token counters, GetExpertStats'
prefix_cached_tokens, routing of computed tokens only, moe-bench --shared-prefix-len, and the same tokens and
bit-identical logprobs with --enable-prefix-caching=false (the CPU kernels, fast by default, are batch-invariant)."""

from __future__ import annotations

import json
import random

import pytest

from moed_harness import model_config, run_tool

TOP_K = model_config()["num_experts_per_tok"]
LAYERS = model_config()["num_hidden_layers"]
BLOCK = 16  # --kv-block-size default


def _prompts():
    rng = random.Random(17)
    shared = [rng.randrange(3, 4096) for _ in range(40)]  # two whole blocks and 8 tokens
    return [shared + [rng.randrange(3, 4096) for _ in range(5 + i)] for i in range(4)]


def _run(d, prompts):
    """One request after another (each finds the blocks the earlier ones left), greedy, with routing and logprobs."""
    return [d.client.complete(prompt_ids=p, temperature=0, max_tokens=6, ignore_eos=True, include_routing=True,
                              logprobs=5, timeout=60) for p in prompts]


def _logprobs(c):
    """Every logprob of a completion, exactly: the chosen token's and the alternatives' (id, logprob)."""
    return [(lp.token_id, lp.logprob, [(t.token_id, t.logprob) for t in lp.top]) for lp in c.logprobs]


@pytest.mark.parametrize("kernels", ["fast", "reference"])
def test_shared_prefix_is_served_from_cache_and_never_routed(make_daemon, kernels):
    on = make_daemon(f"--cpu-kernels={kernels}")
    off = make_daemon(f"--cpu-kernels={kernels}", "--enable-prefix-caching=false")
    prompts = _prompts()
    with_cache, without = _run(on, prompts), _run(off, prompts)
    assert [c.token_ids for c in with_cache] == [c.token_ids for c in without]
    # Bit-identical, not close: the cached requests compute only their tails, in other batches than without caching.
    assert [_logprobs(c) for c in with_cache] == [_logprobs(c) for c in without]
    assert all(len(c.logprobs) == 6 for c in with_cache)
    assert [c.cached_tokens for c in with_cache] == [0, 2 * BLOCK, 2 * BLOCK, 2 * BLOCK]
    assert [c.cached_tokens for c in without] == [0, 0, 0, 0]
    for c, p in zip(with_cache, prompts):
        assert c.prompt_tokens == len(p)
        # Computed tokens only: the prompt less the cached blocks, and each generated token but the last.
        routed = sum(n for layer in c.routing.values() for n in layer.values())
        assert routed == (len(p) - c.cached_tokens + len(c.token_ids) - 1) * TOP_K * LAYERS

    hits = 3 * 2 * BLOCK
    m = on.metrics()
    assert m.get("moed_prefix_cache_queries_total") == sum(len(p) for p in prompts)
    assert m.get("moed_prefix_cache_hits_total") == hits
    assert on.client.expert_stats().prefix_cached_tokens == hits
    routed = sum(v for n, _, v in m.samples if n == "moed_expert_tokens_total")
    assert routed == sum(sum(n for layer in c.routing.values() for n in layer.values()) for c in with_cache)
    m_off = off.metrics()
    assert m_off.get("moed_prefix_cache_queries_total") == 0
    assert m_off.get("moed_prefix_cache_hits_total") == 0
    assert m_off.get("moed_prompt_tokens_total") - m.get("moed_prompt_tokens_total") == hits


def test_moe_bench_shared_prefix_reports_cached_tokens(make_daemon):
    d = make_daemon()
    out = run_tool("moe-bench", ["--addr", d.addr, "--concurrency", "1", "--num-requests", "6", "--prompt-len", "40",
                                 "--shared-prefix-len", "36", "--num-prefixes", "2", "--output-len", "4",
                                 "--ignore-eos"])
    assert out.returncode == 0, out.stderr
    bench = json.loads(out.stdout)
    assert bench["requests"] == {"ok": 6, "failed": 0}
    assert bench["config"]["shared_prefix_len"] == 36 and bench["config"]["num_prefixes"] == 2
    # One request at a time: each prefix's two whole blocks are computed once, then found by the other two.
    assert bench["cached_tokens"] == 4 * 2 * BLOCK
    bad = run_tool("moe-bench", ["--addr", d.addr, "--concurrency", "1", "--prompt-len", "8",
                                 "--shared-prefix-len", "8"])
    assert bad.returncode == 2 and "--shared-prefix-len" in bad.stderr
