"""The Grafana dashboard: built from code, valid, has $datasource and $layer, names only exported metrics."""
import importlib.util
import json
import re

from . import exported_metrics
from .promql_names import DASHBOARD, dashboard, dashboard_queries, metric_names, panels, substitute

LAYER_LABELLED = {"moed_expert_tokens_total", "moed_expert_dropped_tokens_total", "moed_layer_tokens_total",
                  "moed_layer_dropped_tokens_total", "moed_expert_load_ratio_bucket", "moed_expert_imbalance_ratio",
                  "moed_expert_cache_hits_total", "moed_expert_cache_misses_total",
                  "moed_expert_cache_evictions_total", "moed_expert_load_gini", "moed_expert_load_entropy",
                  "moed_expert_load_max_mean_ratio", "moed_expert_load_cv", "moed_expert_load_assignments",
                  "moed_expert_token_class_total"}


def test_committed_json_is_what_the_builder_prints():
    spec = importlib.util.spec_from_file_location("build_dashboard", DASHBOARD.parent / "build_dashboard.py")
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    assert DASHBOARD.read_text() == builder.render(), \
        "deploy/grafana/moed-expert-load.json is stale: run deploy/grafana/build_dashboard.py > it"


def test_dashboard_is_valid_json_with_unique_ids_and_no_overlap():
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] and dash["title"] and dash["schemaVersion"] >= 36
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    cells = set()
    for p in dash["panels"]:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, p["title"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & mine, f"panel {p['title']!r} overlaps another"
        cells |= mine


def test_variables_datasource_and_layer():
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    layer = variables["layer"]
    assert layer["type"] == "query" and layer["multi"] and layer["includeAll"]
    assert layer["datasource"]["uid"] == "${datasource}"
    names = metric_names(layer["definition"])
    assert names and names <= set(exported_metrics.SAMPLES), layer["definition"]


def test_namespace_job_pod_variables_scope_every_query():
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    for name in ("namespace", "job", "pod"):
        v = variables[name]
        assert v["type"] == "query" and v["multi"] and v["includeAll"] and v["allValue"] == ".*", name
        assert metric_names(v["definition"]) <= set(exported_metrics.SAMPLES), v["definition"]
    scope = 'namespace=~"$namespace", job=~"$job", pod=~"$pod"'
    for title, t in dashboard_queries():
        selectors = t["expr"].count("{")
        assert selectors and t["expr"].count(scope) == selectors, f"{title}: {t['expr']}"


def test_no_panel_mixes_units():
    """A panel has one unit; its queries measure one kind of thing (no tokens next to steps, bytes next to counts)."""
    for p in panels():
        if p["type"] != "timeseries":
            continue
        assert not p["fieldConfig"]["overrides"], p["title"]  # no second axis
        kinds = {kind_of(t["expr"]) for t in p["targets"]}
        assert len(kinds) == 1, f"{p['title']}: {kinds}"


def kind_of(expr):
    """What a query's result counts, from the metric families it names: seconds, bytes, engine steps,
    preemptions or other (tokens, requests, assignments, ratios of like quantities)."""
    names = metric_names(expr) | set(re.findall(r"process_[a-z_]+", expr))
    for kind, marks in (("bytes", ("bytes",)), ("seconds", ("seconds",)), ("steps", ("engine_steps",)),
                        ("preemptions", ("preemptions",))):
        if any(m in n for n in names for m in marks):
            return kind
    return "other"


def test_every_panel_queries_the_selected_datasource():
    for p in panels():
        assert p["datasource"]["uid"] == "${datasource}", p["title"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${datasource}", p["title"]


def test_dashboard_names_only_exported_metrics():
    for title, t in dashboard_queries():
        for name in metric_names(t["expr"]):
            if ":" not in name:
                assert name in exported_metrics.SAMPLES, f"panel {title!r} names {name}, which moed does not export"


def test_every_expert_and_cache_metric_is_on_the_dashboard():
    shown = {exported_metrics.SAMPLES[n] for _, t in dashboard_queries() for n in metric_names(t["expr"])
             if n in exported_metrics.SAMPLES}
    wanted = {f for f in exported_metrics.FAMILIES if f.startswith(("moed_expert_", "moed_layer_"))}
    assert wanted - shown == set()


def test_serving_panels_present():
    shown = set().union(*(metric_names(t["expr"]) for _, t in dashboard_queries()))
    for name in ("moed_time_to_first_token_seconds_bucket", "moed_inter_token_latency_seconds_bucket",
                 "moed_generated_tokens_total", "moed_requests_waiting", "moed_requests_running",
                 "moed_kv_cache_usage_ratio", "moed_requests_rejected_total"):
        assert name in shown, f"no serving panel shows {name}"


def test_per_layer_heatmap_repeats_over_layer():
    heatmaps = [p for p in panels() if p["type"] == "heatmap" and p.get("repeat") == "layer"]
    assert heatmaps and "moed_expert_tokens_total" in heatmaps[0]["targets"][0]["expr"]


def test_layer_labelled_metrics_follow_the_layer_variable():
    for title, t in dashboard_queries():
        for name in metric_names(t["expr"]) & LAYER_LABELLED:
            # every selector of that metric carries the $layer matcher
            count = t["expr"].count(name + "{")
            assert count and t["expr"].count(name + '{layer=~"$layer"') == count, f"{title}: {name}"


def test_variable_substitution():
    expr = 'sum by (expert) (rate(moed_expert_tokens_total{layer=~"$layer"}[$__rate_interval]))'
    assert substitute(expr, ["0", "1"]) == 'sum by (expert) (rate(moed_expert_tokens_total{layer=~"(0|1)"}[15s]))'
