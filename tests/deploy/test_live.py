"""Live: moed under gRPC load, a real Prometheus scraping it every second with moed's rules loaded, and every
dashboard query, rule and adapter query evaluated through Prometheus' HTTP API.

Skips only when $MOED_BUILD_DIR/moed (default build/moed) has not been built.
"""
import os
import re
from pathlib import Path

import pytest

from . import exported_metrics
from .live_stack import Load, Moed, Prometheus, families, grpc_stubs, sample_names
from .promql_names import (ROOT, adapter_query, adapter_rules, dashboard, dashboard_queries, metric_names,
                           panels, rules, substitute)

MOED = Path(os.environ.get("MOED_BUILD_DIR", ROOT / "build")) / "moed"
CACHE_PREFIX = "moed_expert_cache_"


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    if not MOED.exists():
        pytest.skip(f"{MOED} does not exist: build the daemon (./moed.sh build) to run the live deploy test")
    pb2, pb2_grpc = grpc_stubs(tmp_path_factory.mktemp("stubs"))
    # A small expert cache and a capacity factor, so that the cache and drop panels and rules see data.
    moed = Moed(MOED, "--expert-cache-slots", "12", "--moe-capacity-factor", "1.5")
    prom = load = None
    try:
        prom = Prometheus(tmp_path_factory.mktemp("prometheus"), f"127.0.0.1:{moed.metrics_port}")
        load = Load(moed.port, pb2, pb2_grpc)
        info = load.stub.GetModelInfo(pb2.GetModelInfoRequest(), timeout=10)
        # Enough scrapes for 15s rates, finished requests for the latency histograms, rules evaluated.
        for expr in ('count_over_time(up{job="moed"}[1m]) >= 6',
                     "sum(rate(moed_generated_tokens_total[15s])) > 0",
                     "sum(increase(moed_time_to_first_token_seconds_count[15s])) > 0",
                     "moed:expert_load_vs_layer_mean:ratio5m"):
            assert prom.wait_for(expr, timeout=45), f"timed out waiting for {expr}; moed log:\n" + \
                "\n".join(moed.log[-20:]) + f"\nload errors: {load.errors[:3]}"
        yield {"moed": moed, "prom": prom, "load": load, "info": info,
               "layers": [str(i) for i in range(info.num_layers)], "exposition": moed.exposition()}
    finally:
        if load:
            load.stop()
        if prom:
            prom.close()
        moed.close()


@pytest.fixture(scope="module")
def exposition_per_layer(live):
    """Exposition of a second moed started with --metrics-per-expert off (per-layer totals)."""
    moed = Moed(MOED, "--metrics-per-expert", "off")
    try:
        return moed.exposition()
    finally:
        moed.close()


def named_metrics():
    """Every non-recording metric the dashboard (queries and variables), the rules and the adapter name."""
    exprs = [t["expr"] for _, t in dashboard_queries()]
    exprs += [v["definition"] for v in dashboard()["templating"]["list"] if v["type"] == "query"]
    exprs += [r["expr"] for r in rules()] + [r["seriesQuery"] + r["metricsQuery"] for r in adapter_rules()]
    return {n for e in exprs for n in metric_names(e) if ":" not in n and n != "up"}


def has_data(body):
    return any(r.get("values") or r.get("value") for r in body["data"]["result"])


def test_layer_variable_lists_every_layer(live):
    [layer_var] = [v for v in dashboard()["templating"]["list"] if v["name"] == "layer"]
    metric, label = re.match(r"label_values\((\w+),\s*(\w+)\)", layer_var["definition"]).groups()
    body = live["prom"].api(f"label/{label}/values", **{"match[]": metric})
    assert body["status"] == "success"
    assert sorted(body["data"], key=int) == live["layers"]


def test_every_panel_query_evaluates(live):
    prom, live_names = live["prom"], sample_names(live["exposition"])
    failures = []
    for panel in panels():
        # A repeated panel runs once per layer value; the others see all layers selected.
        layer_sets = [[layer] for layer in live["layers"]] if panel.get("repeat") == "layer" else [live["layers"]]
        for target in panel["targets"]:
            for layers in layer_sets:
                expr = substitute(target["expr"], layers)
                body = prom.query(expr) if target.get("instant") else prom.query_range(expr, seconds=20)
                if body.get("status") != "success":
                    failures.append(f"{panel['title']}: {expr}: {body.get('error')}")
                elif metric_names(expr) & live_names and not has_data(body):
                    failures.append(f"{panel['title']}: {expr}: no data although moed exports its metrics")
    assert not failures, "\n".join(failures)


def test_expert_load_panels_show_the_load(live):
    prom, experts = live["prom"], live["info"].num_experts
    [heatmap] = [p for p in panels() if p.get("repeat") == "layer"]
    for layer in live["layers"]:
        body = prom.query(substitute(heatmap["targets"][0]["expr"], [layer]))
        rates = [float(r["value"][1]) for r in body["data"]["result"]]
        assert len(rates) == experts and sum(rates) > 0, f"layer {layer}: {rates}"
    skew = prom.query("max(moed:expert_load_vs_layer_mean:ratio5m)")["data"]["result"]
    assert float(skew[0]["value"][1]) > 1.5, "fortune-moe's routing is skewed; the ratio should show it"
    imbalance = prom.query("max(moed_expert_imbalance_ratio)")["data"]["result"]
    assert float(imbalance[0]["value"][1]) >= 1


def test_rules_evaluate_without_errors(live):
    groups = live["prom"].api("rules")["data"]["groups"]
    evaluated = [r for g in groups for r in g["rules"]]
    assert len(evaluated) == len(rules())
    bad = [f"{r['name']}: {r.get('lastError')}" for r in evaluated if r["health"] != "ok"]
    assert not bad, "\n".join(bad)
    per_expert = live["prom"].query("moed:expert_load_vs_layer_mean:ratio5m")["data"]["result"]
    assert len(per_expert) == live["info"].num_layers * live["info"].num_experts


def test_adapter_query_evaluates(live):
    for rule in adapter_rules():
        body = live["prom"].query(adapter_query(rule, 'job="moed"', "instance"))
        assert body["status"] == "success" and body["data"]["result"], body


def test_named_metrics_exist_in_exposition(live, exposition_per_layer):
    exported = sample_names(live["exposition"]) | sample_names(exposition_per_layer)
    missing = {n for n in named_metrics() - exported if not n.startswith(CACHE_PREFIX)}
    assert not missing, f"the dashboard, rules or adapter name metrics moed does not export: {sorted(missing)}"


def test_named_cache_metrics_exist_in_exposition(live):
    exported = sample_names(live["exposition"])
    missing = {n for n in named_metrics() - exported if n.startswith(CACHE_PREFIX)}
    assert not missing, f"cache metrics on the dashboard or in rules that moed does not export: {sorted(missing)}"


def test_every_exported_expert_metric_is_on_the_dashboard(live, exposition_per_layer):
    shown = {n for _, t in dashboard_queries() for n in metric_names(t["expr"])}
    exported = families(live["exposition"]) | families(exposition_per_layer)
    missing = []
    for family, kind in exported.items():
        if not family.startswith(("moed_expert_", "moed_layer_")):
            continue
        samples = {family + s for s in ("_bucket", "_sum", "_count")} if kind == "histogram" else {family}
        if not samples & shown:
            missing.append(family)
    assert not missing, f"moed exports these expert metrics but the dashboard does not show them: {missing}"


def test_metric_catalog_matches_exposition(live, exposition_per_layer):
    exported = families(live["exposition"]) | families(exposition_per_layer)
    wrong = {f: k for f, k in exported.items() if exported_metrics.FAMILIES.get(f) != k}
    assert not wrong, f"tests/deploy/exported_metrics.py is out of date with moed: {wrong}"
    stale = sorted(set(exported_metrics.FAMILIES) - set(exported))  # the other direction
    assert not stale, f"tests/deploy/exported_metrics.py lists families moed does not export: {stale}"


def test_load_ran_without_errors(live):
    load = live["load"]
    assert load.completed > 0 and load.tokens > 0
    assert not load.errors, load.errors[:5]
