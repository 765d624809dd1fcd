#!/usr/bin/env python3
"""Builds the moed expert-load Grafana dashboard as code: `python3 build_dashboard.py > moed-expert-load.json`.

Standard library only. tests/deploy checks that the committed JSON is exactly what this prints, that every
query names metrics moed exports, and (against a live moed + Prometheus) that every query evaluates.
"""
import json
import re
import sys

DS = {"type": "prometheus", "uid": "${datasource}"}
RATE = "[$__rate_interval]"
LAYER = 'layer=~"$layer"'
# Every moed series is narrowed to the selected deployments: the namespace, job and pod variables (All = ".*",
# which also matches series without the label, e.g. recording rules without `pod`).
SCOPE = 'namespace=~"$namespace", job=~"$job", pod=~"$pod"'
_METRIC = re.compile(r'(?<![A-Za-z0-9_:"])(moed[_:][A-Za-z0-9_:]*|process_[a-z_]+)(\{[^}]*\})?')


def scoped(expr):
    """`expr` with SCOPE added to every moed and process_* selector (after the matchers it already has)."""
    def add(m):
        inner = m.group(2)[1:-1].strip() if m.group(2) else ""
        return f"{m.group(1)}{{{inner + ', ' if inner else ''}{SCOPE}}}"
    return _METRIC.sub(add, expr)


def rate(metric, by, sel=""):
    """sum by (<by>) (rate(<metric>{<sel>}[$__rate_interval]))."""
    return f"sum by ({by}) (rate({metric}{{{sel}}}{RATE}))"


def quantile(q, metric, by="le"):
    return f"histogram_quantile({q}, {rate(metric + '_bucket', by)})"


def target(expr, legend="", ref="A", fmt="time_series", instant=False):
    return {"datasource": DS, "expr": scoped(expr), "legendFormat": legend, "refId": ref, "format": fmt,
            "range": not instant, "instant": instant}


def targets(*pairs):
    """(expr, legend) pairs → targets A, B, C..."""
    return [target(e, l, chr(ord("A") + i)) for i, (e, l) in enumerate(pairs)]


class Layout:
    """Hands out panel ids and grid positions, left to right, top to bottom on a 24-column grid."""

    def __init__(self):
        self.next_id, self.x, self.y, self.row_h = 1, 0, 0, 0

    def place(self, w, h):
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        pos = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.x += w
        self.row_h = max(self.row_h, h)
        self.next_id += 1
        return self.next_id - 1, pos

    def row(self, title):
        if self.x:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        pid, pos = self.place(24, 1)
        self.x, self.y, self.row_h = 0, self.y + 1, 0
        return {"type": "row", "id": pid, "title": title, "gridPos": pos, "collapsed": False, "panels": []}


def timeseries(lay, title, desc, tgts, unit="short", w=8, h=8, thresholds=None, stack=False):
    pid, pos = lay.place(w, h)
    steps = [{"color": "green", "value": None}]
    if thresholds is not None:
        steps.append({"color": "red", "value": thresholds})
    return {
        "type": "timeseries", "id": pid, "title": title, "description": desc, "gridPos": pos,
        "datasource": DS, "targets": tgts,
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "custom": {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10 if stack else 0,
                           "stacking": {"mode": "normal" if stack else "none", "group": "A"},
                           "thresholdsStyle": {"mode": "line" if thresholds is not None else "off"}},
                "thresholds": {"mode": "absolute", "steps": steps},
            },
            "overrides": [],
        },
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                    "tooltip": {"mode": "multi", "sort": "desc"}},
    }


def heatmap(lay, title, desc, tgts, y_unit="short", w=12, h=9, y_layout="auto", repeat=None):
    pid, pos = lay.place(w, h)
    panel = {
        "type": "heatmap", "id": pid, "title": title, "description": desc, "gridPos": pos,
        "datasource": DS, "targets": tgts,
        "options": {
            "calculate": False,
            "cellGap": 1,
            "color": {"mode": "scheme", "scheme": "Oranges", "scale": "exponential", "exponent": 0.5,
                      "fill": "dark-orange", "reverse": False, "steps": 64},
            "rowsFrame": {"layout": y_layout},
            "yAxis": {"axisPlacement": "left", "unit": y_unit, "reverse": False},
            "tooltip": {"mode": "single", "yHistogram": False, "showColorScale": True},
            "legend": {"show": True},
            "exemplars": {"color": "rgba(255,0,255,0.7)"},
            "filterValues": {"le": 1e-9},
        },
        "fieldConfig": {"defaults": {}, "overrides": []},
    }
    if repeat:
        # Grafana gives each repeated copy 24 / maxPerRow columns.
        panel.update({"repeat": repeat, "repeatDirection": "h", "maxPerRow": 2})
    return panel


def matrix_table(lay, title, desc, expr, w=12, h=9):
    """An instant query shown as a layer (rows) × expert (columns) matrix with coloured cells."""
    pid, pos = lay.place(w, h)
    return {"type": "table", "id": pid, "title": title, "description": desc, "gridPos": pos, "datasource": DS,
            "targets": [target(expr, "", fmt="table", instant=True)],
            "options": {"showHeader": True},
            "fieldConfig": {"defaults": {"unit": "percentunit", "decimals": 1,
                                         "custom": {"cellOptions": {"type": "color-background"}},
                                         "color": {"mode": "continuous-YlRd"}},
                            "overrides": []},
            "transformations": [{"id": "groupingToMatrix",
                                 "options": {"columnField": "expert", "rowField": "layer", "valueField": "Value"}}]}


def table(lay, title, desc, tgts, w=8, h=8):
    pid, pos = lay.place(w, h)
    return {"type": "table", "id": pid, "title": title, "description": desc, "gridPos": pos,
            "datasource": DS, "targets": tgts, "options": {"showHeader": True},
            "fieldConfig": {"defaults": {}, "overrides": []},
            "transformations": [{"id": "labelsToFields", "options": {"mode": "columns"}}]}


def expert_panels(lay):
    tokens = "moed_expert_tokens_total"
    dropped = "moed_expert_dropped_tokens_total"
    per_expert = rate(tokens, "layer, expert", LAYER)
    layer_tokens = f"({rate(tokens, 'layer', LAYER)} or {rate('moed_layer_tokens_total', 'layer', LAYER)})"
    layer_dropped = (f"({rate(dropped, 'layer', LAYER)} or "
                     f"{rate('moed_layer_dropped_tokens_total', 'layer', LAYER)})")
    return [
        lay.row("Expert load"),
        heatmap(lay, "Tokens per expert — layer $layer",
                "Router assignments per second to each expert of the layer (rows: experts). "
                "A bright row that stays bright is a hot expert.",
                [target(rate(tokens, "expert", LAYER), "{{expert}}")], w=24, repeat="layer"),
        heatmap(lay, "Expert load ratio (assignments ÷ layer mean)",
                "Histogram moed_expert_load_ratio: each step, each expert's assignments divided by its layer's "
                "mean, observed once per expert. Mass above 2 means skewed routing.",
                [target(f"sum by (le) (increase(moed_expert_load_ratio_bucket{{{LAYER}}}{RATE}))", "{{le}}",
                        fmt="heatmap")], y_layout="le"),
        timeseries(lay, "Imbalance (max ÷ mean) per layer",
                   "moed_expert_imbalance_ratio: the busiest expert's load over the layer's mean, on the daemon's "
                   "sliding window. Alert MoedExpertHotspot at 3.",
                   targets((f"max by (layer) (moed_expert_imbalance_ratio{{{LAYER}}})", "layer {{layer}}")),
                   w=12, h=9, thresholds=3),
        matrix_table(lay, "Layer × expert load (share of the layer, dashboard range)",
                     "Each expert's share of its layer's router assignments over the dashboard's time range: rows "
                     "are layers, columns experts; redder = hotter. Needs per-expert series (--metrics-per-expert); "
                     "GetExpertStats / `moectl experts` give the matrix for any model.",
                     f"sum by (layer, expert) (increase({tokens}{{{LAYER}}}[$__range])) / on (layer) group_left () "
                     f"sum by (layer) (increase({tokens}{{{LAYER}}}[$__range]))"),
        table(lay, "Specialization: main token class per expert",
              "moed_expert_token_class_total: of the computed tokens (prompt and generated) each expert received, the token class it saw "
              "most (letters, digits, punctuation, whitespace, cjk, code_symbols, bytes, special, mixed) and that "
              "count. Top tokens per expert: `moectl experts` or GetExpertProfile.",
              [target("topk by (layer, expert) (1, sum by (layer, expert, token_class) "
                      f"(increase(moed_expert_token_class_total{{{LAYER}}}[$__range])))", "", fmt="table",
                      instant=True)], w=12, h=9),
        *balance_panels(lay),
        timeseries(lay, "Expert load ÷ layer mean",
                   "Each expert's assignment rate divided by its layer's mean rate (1 = balanced).",
                   targets((f"{per_expert} / on (layer) group_left () avg by (layer) ({per_expert})",
                            "L{{layer}} E{{expert}}")), thresholds=3),
        timeseries(lay, "Router assignments per layer",
                   "Expert assignments per second per layer: tokens × top-k.",
                   targets((layer_tokens, "layer {{layer}}")), unit="short"),
        timeseries(lay, "Drop rate per layer",
                   "Share of assignments dropped by the expert capacity (--moe-capacity-factor); 0 when dropless. "
                   "Alert MoedTokenDropRateHigh at 1%.",
                   targets((f"{layer_dropped} / {layer_tokens}", "layer {{layer}}")), unit="percentunit",
                   thresholds=0.01),
        timeseries(lay, "Drop rate per expert",
                   "Share of each expert's assignments dropped by its capacity.",
                   targets((f"{rate(dropped, 'layer, expert', LAYER)} / {per_expert}", "L{{layer}} E{{expert}}")),
                   unit="percentunit", w=24),
    ]


def balance(metric, agg="max"):
    """One layer's balance gauge over both windows, worst pod."""
    return [(f'{agg} by (layer) ({metric}{{{LAYER}, window="{w}"}})', f"layer {{{{layer}}}} {label}")
            for w, label in (("last_1000_steps", "last 1000 steps"), ("since_start", "since start"))]


def balance_panels(lay):
    """Balance per layer from the daemon's moed_expert_load_* gauges (both metrics modes), one unit per panel."""
    return [
        timeseries(lay, "Gini of expert load per layer",
                   "moed_expert_load_gini: 0 = every expert equally loaded, (n-1)/n = one expert takes everything; "
                   "over the last 1000 steps with assignments and since start.",
                   targets(*balance("moed_expert_load_gini")), unit="none", w=6),
        timeseries(lay, "Routing entropy per layer (normalized)",
                   "moed_expert_load_entropy: entropy of the expert distribution over ln(experts); 1 = uniform, "
                   "0 = one expert. Lowest pod.",
                   targets(*balance("moed_expert_load_entropy", "min")), unit="percentunit", w=6),
        timeseries(lay, "Busiest expert ÷ mean per layer",
                   "moed_expert_load_max_mean_ratio over the last 1000 steps and since start. MoedExpertHotspot "
                   "fires when the 1000-step value stays above 3 for 10 + 15 minutes.",
                   targets(*balance("moed_expert_load_max_mean_ratio")), unit="none", w=6, thresholds=3),
        timeseries(lay, "Coefficient of variation per layer",
                   "moed_expert_load_cv: standard deviation of per-expert load over its mean (0 = uniform).",
                   targets(*balance("moed_expert_load_cv")), unit="none", w=6),
        timeseries(lay, "Assignments in the balance windows",
                   "moed_expert_load_assignments: router assignments the balance gauges are computed over "
                   "(0 = no data yet, the gauges then read 0).",
                   targets(*balance("moed_expert_load_assignments", "sum")), unit="short", w=12),
    ]


def cache_panels(lay):
    hits = rate("moed_expert_cache_hits_total", "layer", LAYER)
    misses = rate("moed_expert_cache_misses_total", "layer", LAYER)
    return [
        lay.row("Expert cache"),
        timeseries(lay, "Cache hit ratio per layer",
                   "Routed token assignments whose expert was already resident on the device tier. Alert "
                   "MoedExpertCacheHitRatioLow below 80%.",
                   targets((f"{hits} / ({hits} + {misses})", "layer {{layer}}")), unit="percentunit"),
        timeseries(lay, "Loads and evictions per layer",
                   "Experts copied from host memory on demand (a miss) or by prefetch, and experts evicted "
                   "to make room.",
                   targets((rate("moed_expert_cache_loads_total", "layer, kind", LAYER), "{{kind}} loads L{{layer}}"),
                           (rate("moed_expert_cache_evictions_total", "layer", LAYER), "evictions L{{layer}}")),
                   unit="ops"),
        timeseries(lay, "Residency",
                   "Experts resident on the device tier and the tier's capacity in experts.",
                   targets(("sum(moed_expert_cache_resident_experts)", "resident"),
                           ("sum(moed_expert_cache_capacity_experts)", "capacity"))),
        timeseries(lay, "Stall time",
                   "Seconds per second that steps waited for expert loads (1 = always waiting).",
                   targets(("sum(rate(moed_expert_cache_stall_seconds_total" + RATE + "))", "stall")),
                   unit="percentunit"),
        timeseries(lay, "Expert load latency p50 / p99",
                   "Time to copy one expert from the host tier to the device tier.",
                   targets((quantile(0.5, "moed_expert_cache_load_seconds"), "p50"),
                           (quantile(0.99, "moed_expert_cache_load_seconds"), "p99")), unit="s"),
        timeseries(lay, "Prefetches", "Prefetched experts per second whose expert was used or wasted.",
                   targets((rate("moed_expert_cache_prefetches_total", "result"), "prefetch {{result}}")),
                   unit="ops"),
        timeseries(lay, "Host-to-device transfer", "Expert weight bytes copied to the device tier per second.",
                   targets(("sum(rate(moed_expert_cache_transfer_bytes_total" + RATE + "))", "bytes/s")),
                   unit="Bps"),
    ]


def serving_panels(lay):
    return [
        lay.row("Serving"),
        timeseries(lay, "Time to first token p50 / p99", "From arrival to the first streamed token.",
                   targets((quantile(0.5, "moed_time_to_first_token_seconds"), "p50"),
                           (quantile(0.99, "moed_time_to_first_token_seconds"), "p99")), unit="s", thresholds=2),
        timeseries(lay, "Inter-token latency p50 / p99", "Between consecutive streamed tokens of a request.",
                   targets((quantile(0.5, "moed_inter_token_latency_seconds"), "p50"),
                           (quantile(0.99, "moed_inter_token_latency_seconds"), "p99")), unit="s"),
        timeseries(lay, "Tokens per second",
                   "Prompt tokens prefilled and tokens generated per second, all pods.",
                   targets(("sum(rate(moed_generated_tokens_total" + RATE + "))", "generated"),
                           ("sum(rate(moed_prompt_tokens_total" + RATE + "))", "prompt"))),
        timeseries(lay, "Engine steps per second", "Engine steps run per second, all pods.",
                   targets(("sum(rate(moed_engine_steps_total" + RATE + "))", "steps")), unit="ops"),
        timeseries(lay, "Queue and running", "Requests waiting for admission and sequences in the running batch.",
                   targets(("sum(moed_requests_waiting)", "waiting"), ("sum(moed_requests_running)", "running"))),
        timeseries(lay, "KV cache use", "Share of paged-KV blocks in use (max over pods).",
                   targets(("max(moed_kv_cache_usage_ratio)", "usage"),
                           ("sum(moed_kv_cache_blocks_used) / sum(moed_kv_cache_blocks_capacity)", "blocks used ÷ total")),
                   unit="percentunit", thresholds=0.95),
        timeseries(lay, "Rejections", "Requests refused at once, by reason. Alert MoedRequestsRejected.",
                   targets((rate("moed_requests_rejected_total", "reason"), "{{reason}}")), unit="reqps"),
        timeseries(lay, "Requests by status", "Finished requests per second by front end (grpc, http) and final status.",
                   targets((rate("moed_requests_total", "front, status"), "{{front}} {{status}}")), unit="reqps",
                   stack=True),
        timeseries(lay, "Queue time and request duration p99", "Waiting before admission; arrival to last token.",
                   targets((quantile(0.99, "moed_queue_time_seconds"), "queue p99"),
                           (quantile(0.99, "moed_request_duration_seconds"), "duration p99")), unit="s"),
        timeseries(lay, "Engine step time p99 by phase", "One engine step: prefill, decode or mixed batches.",
                   targets((quantile(0.99, "moed_engine_step_seconds", "le, phase"), "{{phase}}")), unit="s"),
        timeseries(lay, "Batch tokens p50 / p99", "Tokens per engine step.",
                   targets((quantile(0.5, "moed_batch_tokens"), "batch p50"),
                           (quantile(0.99, "moed_batch_tokens"), "batch p99"))),
        timeseries(lay, "Preemptions", "Sequences preempted (KV blocks ran out) per second.",
                   targets(("sum(rate(moed_preemptions_total" + RATE + "))", "preemptions/s")), unit="ops"),
        timeseries(lay, "Finished requests by reason",
                   "moed_requests_finished_total: requests the engine finished per second, by finish reason.",
                   targets((rate("moed_requests_finished_total", "finish_reason"), "{{finish_reason}}")),
                   unit="reqps", stack=True),
        timeseries(lay, "Prompt and generation length p50 / p99", "Tokens per finished request.",
                   targets((quantile(0.5, "moed_request_prompt_tokens"), "prompt p50"),
                           (quantile(0.99, "moed_request_prompt_tokens"), "prompt p99"),
                           (quantile(0.5, "moed_request_generation_tokens"), "generation p50"),
                           (quantile(0.99, "moed_request_generation_tokens"), "generation p99"))),
        timeseries(lay, "Process CPU", "CPU seconds per second of each moed process (1 = one core busy).",
                   targets(("sum by (pod, instance) (rate(process_cpu_seconds_total{model_name!=\"\"}" + RATE + "))",
                            "{{pod}}{{instance}}")), unit="percentunit"),
        timeseries(lay, "Process resident memory", "Resident set size of each moed process.",
                   targets(("max by (pod, instance) (process_resident_memory_bytes{model_name!=\"\"})", "{{pod}}{{instance}}")),
                   unit="bytes"),
        timeseries(lay, "Open file descriptors", "Open file descriptors of each moed process (limit: process_max_fds).",
                   targets(("max by (pod, instance) (process_open_fds{model_name!=\"\"})", "{{pod}}{{instance}}")),
                   unit="short"),
        table(lay, "Model and backend", "moed_info of each pod.",
              [target("max by (model_name, family, backend) (moed_info)", "", fmt="table", instant=True)], w=16, h=5),
    ]


def variable(name, label, definition, sort=1):
    """A multi-value query variable; All = ".*" (matches series without the label too)."""
    return {"name": name, "label": label, "type": "query", "datasource": DS, "definition": definition,
            "query": {"query": definition, "qryType": 1, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
            "multi": True, "includeAll": True, "allValue": ".*", "current": {}, "hide": 0, "refresh": 2,
            "sort": sort, "regex": "", "options": []}


def dashboard():
    lay = Layout()
    panels = expert_panels(lay) + cache_panels(lay) + serving_panels(lay)
    return {
        "uid": "moed-expert-load",
        "title": "moed — expert load and serving",
        "description": "Per-expert routing load, drops and hot-expert cache of moed, with its serving latency.",
        "tags": ["moed", "moe", "llm"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": [
            {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
             "current": {}, "hide": 0, "refresh": 1, "regex": "", "options": []},
            variable("namespace", "Namespace", "label_values(moed_info, namespace)"),
            variable("job", "Job", 'label_values(moed_info{namespace=~"$namespace"}, job)'),
            variable("pod", "Pod", 'label_values(moed_info{namespace=~"$namespace", job=~"$job"}, pod)'),
            variable("layer", "Layer",
                     'label_values(moed_expert_imbalance_ratio{namespace=~"$namespace", job=~"$job"}, layer)',
                     sort=3),
        ]},
        "annotations": {"list": []},
        "panels": panels,
    }


def render():
    return json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
