"""Expert load balance (issue 16): GetExpertStats.balance and the moed_expert_load_* gauges agree with Gini,
normalized entropy, max/mean and CV computed here, independently, from the routed-token matrices."""
import math
import time

import pytest

from moed_harness import model_config

CONFIG = model_config()
LAYERS = CONFIG["num_hidden_layers"]
EXPERTS = CONFIG["num_local_experts"]
WINDOWS = ("last_1000_steps", "since_start")


def balance(counts):
    """(gini, entropy, max_over_mean, cv) by the textbook definitions; zeros when there is no load."""
    n, total = len(counts), sum(counts)
    if total == 0:
        return 0.0, 0.0, 0.0, 0.0
    mean = total / n
    gini = sum(abs(a - b) for a in counts for b in counts) / (2 * n * n * mean)
    entropy = -sum(c / total * math.log(c / total) for c in counts if c) / math.log(n)
    cv = math.sqrt(sum((c - mean) ** 2 for c in counts) / n) / mean
    return gini, entropy, max(counts) / mean, cv


def test_balance_fields_and_gauges_match_the_definitions(daemon):
    daemon.client.complete("Balance, please: a few tokens of routing", temperature=0, max_tokens=12,
                           ignore_eos=True, timeout=60)
    # The stream ends before the engine thread publishes that step's stats and metrics: wait until the
    # scrape and the snapshot describe the same step.
    deadline = time.monotonic() + 10
    while True:
        stats = daemon.client.expert_stats(timeout=10)
        metrics = daemon.metrics()
        if metrics.get("moed_engine_steps_total") == stats.steps or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(stats.window_routed_tokens) == LAYERS * EXPERTS
    assert 0 < stats.window_steps <= stats.steps
    assert [(b.layer, b.window) for b in stats.balance] == [(l, w) for l in range(LAYERS) for w in WINDOWS]
    for b in stats.balance:
        matrix = stats.window_routed_tokens if b.window == "last_1000_steps" else stats.routed_tokens
        counts = list(matrix[b.layer * EXPERTS:(b.layer + 1) * EXPERTS])
        assert b.assignments == sum(counts) > 0
        want = balance(counts)
        assert (b.gini, b.entropy, b.max_over_mean, b.cv) == pytest.approx(want, rel=1e-9, abs=1e-12), b
        # The gauges come from the engine step before the last scrape; the shared daemon is idle by now.
        labels = {"layer": str(b.layer), "window": b.window}
        got = tuple(metrics.get(f"moed_expert_load_{name}", **labels)
                    for name in ("gini", "entropy", "max_mean_ratio", "cv"))
        assert got == pytest.approx(want, rel=1e-9, abs=1e-12), labels
        assert metrics.get("moed_expert_load_assignments", **labels) == sum(counts)
    # Fewer than 1000 steps so far: the window still holds everything since start.
    if stats.steps < 1000:
        assert list(stats.window_routed_tokens) == list(stats.routed_tokens)


def test_routing_summary_carries_each_layers_entropy(daemon):
    msgs = list(daemon.client.generate("Entropy of one request", temperature=0, max_tokens=6, ignore_eos=True,
                                       include_routing=True, timeout=60))
    routing = msgs[-1].routing
    assert len(routing) == LAYERS
    for layer in routing:
        counts = dict(zip(layer.expert_ids, layer.token_counts))
        want = balance([counts.get(e, 0) for e in range(EXPERTS)])[1]
        assert layer.entropy == pytest.approx(want, rel=1e-12, abs=1e-12), layer.layer
        assert 0 < layer.entropy < 1  # top-2 of 8 experts over several tokens: neither one expert nor uniform
