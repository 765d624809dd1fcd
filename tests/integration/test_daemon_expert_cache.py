"""The hot-expert cache through the daemon: moed with a small simulated device tier serves fortune-moe with the
same greedy outputs as moe-run, its hit/miss counters add up to the routed assignments per layer, loads and bytes
agree with each other, residency in GetExpertStats matches the gauges, and the cache flags are checked."""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from moed_harness import binary, model_config, moe_run, run_tool

CFG = model_config()
LAYERS, EXPERTS = CFG["num_hidden_layers"], CFG["num_local_experts"]
# One expert's fp32 gate, up and down in the CPU backend's slot pool.
EXPERT_BYTES = 3 * CFG["hidden_size"] * CFG["intermediate_size"] * 4
SLOTS = 12  # of 32 routed experts: 3 per layer on average, so the cache must evict
PROMPTS = ["Never trust a computer", "The early bird", "Time flies like", "Your lucky number is",
           "A fool and his money", "Beware of", "Love is", "When in doubt"]


@pytest.fixture(scope="module")
def cached(tmp_path_factory):
    from moed_harness import Daemon

    d = Daemon(tmp_path_factory.mktemp("moed-cache"), "--expert-cache-slots", str(SLOTS),
               "--expert-cache-policy", "lfu", "--expert-cache-prefetch=true").start()
    yield d
    assert d.stop() == 0, d.log_tail()


def test_small_cache_serves_the_same_tokens_and_counters_add_up(cached):
    with ThreadPoolExecutor(len(PROMPTS)) as pool:
        got = list(pool.map(lambda p: cached.client.complete(p, temperature=0, max_tokens=20, timeout=120), PROMPTS))
    for prompt, c in zip(PROMPTS, got):
        ref = moe_run(prompt, 20)
        assert c.token_ids == ref["output_ids"], prompt
        assert c.text == ref["text"], prompt

    m = cached.metrics()
    routed_total = 0
    for layer in range(LAYERS):
        routed = m.get("moed_expert_tokens_total", layer=layer)
        hits = m.get("moed_expert_cache_hits_total", layer=layer)
        misses = m.get("moed_expert_cache_misses_total", layer=layer)
        assert hits + misses == routed, f"layer {layer}: {hits} hits + {misses} misses != {routed} routed"
        assert misses > 0 and hits > 0
        routed_total += routed
    # Dropless: every token that went through the model was routed to top-k experts in every layer.
    tokens = m.get("moed_prompt_tokens_total") + m.get("moed_generated_tokens_total") - len(PROMPTS)
    assert routed_total == tokens * CFG["num_experts_per_tok"] * LAYERS

    demand = m.get("moed_expert_cache_loads_total", kind="demand")
    prefetch = m.get("moed_expert_cache_loads_total", kind="prefetch")
    assert demand > 0 and prefetch > 0
    assert m.get("moed_expert_cache_transfer_bytes_total") == (demand + prefetch) * EXPERT_BYTES
    assert m.get("moed_expert_cache_load_seconds_count") == demand + prefetch
    assert m.get("moed_expert_cache_evictions_total") > 0
    used, wasted = (m.get("moed_expert_cache_prefetches_total", result=r) for r in ("used", "wasted"))
    assert used + wasted <= prefetch
    assert m.get("moed_expert_cache_resident_experts") == m.get("moed_expert_cache_capacity_experts") == SLOTS
    assert m.get("moed_expert_cache_stall_seconds_total") > 0

    stats = cached.client.expert_stats(timeout=10)
    assert sum(stats.resident) == SLOTS
    assert stats.cache.enabled and stats.cache.policy == "lfu" and stats.cache.prefetch
    assert stats.cache.capacity_experts == stats.cache.resident_experts == SLOTS
    for layer in range(LAYERS):
        assert stats.cache.hits[layer] == m.get("moed_expert_cache_hits_total", layer=layer)
        assert stats.cache.misses[layer] == m.get("moed_expert_cache_misses_total", layer=layer)
    assert stats.cache.transfer_bytes == m.get("moed_expert_cache_transfer_bytes_total")


def test_moectl_stats_shows_the_cache(cached):
    out = run_tool("moectl", ["--addr", cached.addr, "stats", "--json"])
    assert out.returncode == 0, out.stderr
    cache = json.loads(out.stdout)["cache"]
    assert cache["enabled"] and cache["capacity_experts"] == SLOTS and len(cache["hits"]) == LAYERS
    text = run_tool("moectl", ["--addr", cached.addr, "stats"])
    assert text.returncode == 0 and "expert cache: lfu + prefetch" in text.stdout, text.stdout


def test_exposition_with_the_cache_passes_promtool(cached):
    cached.client.complete("Never trust a computer", temperature=0, max_tokens=4, timeout=60)
    exposition = cached.metrics().text
    check = subprocess.run(["promtool", "check", "metrics"], input=exposition, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_cache_off_reports_everything_resident(daemon):
    m = daemon.metrics()
    assert m.get("moed_expert_cache_capacity_experts") == m.get("moed_expert_cache_resident_experts") == \
        LAYERS * EXPERTS
    stats = daemon.client.expert_stats(timeout=10)
    assert not stats.cache.enabled and all(stats.resident)


def test_fraction_sizes_the_cache(make_daemon):
    d = make_daemon("--expert-cache-fraction", "0.25", "--expert-cache-policy", "load-aware")
    d.client.complete("Love is", temperature=0, max_tokens=8, timeout=60)
    assert d.metrics().get("moed_expert_cache_capacity_experts") == LAYERS * EXPERTS // 4
    assert d.client.expert_stats(timeout=10).cache.policy == "load-aware"


@pytest.mark.parametrize("flags, message", [
    (("--expert-cache-policy", "fifo"), "--expert-cache-policy"),
    (("--expert-cache-slots", "-1"), "--expert-cache-slots"),
    (("--expert-cache-fraction", "1.5"), "--expert-cache-fraction"),
    (("--expert-cache-slots", "4", "--expert-cache-bytes", "1000000"), "at most one"),
])
def test_bad_cache_flags_exit_2_naming_the_flag(flags, message):
    out = subprocess.run([str(binary("moed")), "--backend", "cpu", "--port", "0", "--metrics-port", "0", *flags],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
