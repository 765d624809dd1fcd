"""Capacity drops and preemptions as the daemon reports them, in exact counts: the /metrics counters and
GetExpertStats agree cell by cell with each other and with the request's own routing, and a KV cache that holds
one full context forces exactly one preemption of two long streams, whose tokens stay the reference's."""

from __future__ import annotations

import threading

from moed_harness import model_config, moe_run

LAYERS = model_config()["num_hidden_layers"]
EXPERTS = model_config()["num_local_experts"]
TOP_K = model_config()["num_experts_per_tok"]


def per_expert(metrics, name):
    return [[metrics.get(name, layer=str(l), expert=str(e)) for e in range(EXPERTS)] for l in range(LAYERS)]


def test_capacity_drops_agree_across_metrics_stats_and_the_request(make_daemon):
    d = make_daemon("--moe-capacity-factor", "0.5", "--metrics-per-expert", "on")
    before_stats, before_m = d.client.expert_stats(timeout=10), d.metrics()
    c = d.client.complete("A prompt long enough that its prefill overflows the expert capacity of every layer",
                          temperature=0, max_tokens=8, ignore_eos=True, include_routing=True, timeout=60)
    after_stats, after_m = d.client.expert_stats(timeout=10), d.metrics()
    routed = [a - b for a, b in zip(after_stats.routed_tokens, before_stats.routed_tokens)]
    dropped = [a - b for a, b in zip(after_stats.dropped_tokens, before_stats.dropped_tokens)]
    assert sum(dropped) > 0, "capacity factor 0.5 dropped nothing"
    processed = c.prompt_tokens + c.completion_tokens - 1
    for l in range(LAYERS):
        row = slice(l * EXPERTS, (l + 1) * EXPERTS)
        assert sum(routed[row]) == processed * TOP_K, l  # drops are counted inside routed, never instead
        assert all(0 <= dr <= ro for dr, ro in zip(dropped[row], routed[row])), l
        # The request's own routing (it ran alone) is every router assignment of its tokens.
        assert [c.routing.get(l, {}).get(e, 0) for e in range(EXPERTS)] == routed[row], l
    # /metrics says the same, cell by cell.
    m_routed = [a - b for ra, rb in zip(per_expert(after_m, "moed_expert_tokens_total"),
                                        per_expert(before_m, "moed_expert_tokens_total")) for a, b in zip(ra, rb)]
    m_dropped = [a - b for ra, rb in zip(per_expert(after_m, "moed_expert_dropped_tokens_total"),
                                         per_expert(before_m, "moed_expert_dropped_tokens_total"))
                 for a, b in zip(ra, rb)]
    assert m_routed == routed and m_dropped == dropped


PROMPTS = ("Preempt me first", "Preempt me second")
LONG = 600  # two sequences of ~605 tokens need 2 × 38 blocks; the cache below holds 64


def test_kv_for_one_context_preempts_exactly_once(make_daemon):
    # fortune-moe: 4 layers × K and V × 2 heads × 32 dims × 4 bytes = 2 KiB per token, 32 KiB per 16-token block;
    # 2 MiB = 64 blocks = one full 1024-token context, the least the daemon accepts.
    d = make_daemon("--kv-cache-bytes", str(64 * 16 * 2048), "--max-running-seqs", "2")
    for p in PROMPTS:
        moe_run(p, LONG)  # references first, so the daemon runs alone on the CPU below
    results = {}

    def run(p):
        results[p] = d.client.complete(p, temperature=0, max_tokens=LONG, ignore_eos=True, timeout=300)

    threads = [threading.Thread(target=run, args=(p,)) for p in PROMPTS]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    # Both grow a block per 16 tokens until 64 blocks are in use; the later one is preempted and can only come back
    # (recomputing) once the first has finished: exactly one preemption, whatever the timing.
    assert d.metrics().get("moed_kv_cache_blocks_capacity") == 64
    assert d.metrics().get("moed_preemptions_total") == 1
    for p in PROMPTS:
        assert results[p].token_ids == moe_run(p, LONG)["output_ids"], p
    assert d.wait_metric("moed_kv_cache_blocks_used", 0) == 0
