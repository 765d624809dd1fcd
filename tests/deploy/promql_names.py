"""Metric names in PromQL text, and the queries that the dashboard, the rules and the adapter config hold."""
import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "moed-expert-load.json"
RULE_FILES = [DEPLOY / "prometheus" / "recording-rules.yaml", DEPLOY / "prometheus" / "alerts.yaml"]
ADAPTER_CONFIG = DEPLOY / "k8s" / "prometheus-adapter" / "config.yaml"

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_NAME = re.compile(r"(?<![A-Za-z0-9_:])(moed[_:][A-Za-z0-9_:]*|up)(?![A-Za-z0-9_:])")


def metric_names(expr):
    """Every moed metric (moed_*), recording rule (moed:*) and `up` that a PromQL expression names.

    Label names never start with moed and string literals are dropped first, so only metric names remain.
    """
    return set(_NAME.findall(_STRING.sub('""', expr)))


def dashboard():
    return json.loads(DASHBOARD.read_text())


def panels(dash=None):
    """Every panel with targets (rows flattened)."""
    out = []
    for panel in (dash or dashboard())["panels"]:
        out.extend(panel.get("panels", []) if panel["type"] == "row" else [panel])
    return [p for p in out if p.get("targets")]


def dashboard_queries(dash=None):
    """(panel title, target) for every panel query."""
    return [(p["title"], t) for p in panels(dash) for t in p["targets"]]


def rules():
    """Every rule (recording and alerting) of the rule files, as dicts."""
    out = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            out.extend(group["rules"])
    return out


def adapter_rules():
    return yaml.safe_load(ADAPTER_CONFIG.read_text())["rules"]


def adapter_query(rule, label_matchers, group_by):
    """The PromQL prometheus-adapter runs for a rule: its Go template filled in as the adapter would."""
    series = re.search(r"^\s*([A-Za-z_:][A-Za-z0-9_:]*)", rule["seriesQuery"]).group(1)
    return (rule["metricsQuery"].replace("<<.Series>>", series)
            .replace("<<.LabelMatchers>>", label_matchers).replace("<<.GroupBy>>", group_by))


def substitute(expr, layers, rate_interval="15s", interval="5s", time_range="1m"):
    """Dashboard variables as Grafana replaces them for Prometheus: multi-value $layer becomes (a|b|...); the
    namespace, job and pod variables set to All become their allValue ".*"."""
    layer = "(" + "|".join(layers) + ")" if len(layers) > 1 else layers[0]
    for var, value in (("$__rate_interval", rate_interval), ("$__interval", interval), ("$__range", time_range),
                       ("${layer}", layer), ("$layer", layer), ("$namespace", ".*"), ("$job", ".*"),
                       ("$pod", ".*")):
        expr = expr.replace(var, value)
    assert "$" not in expr, f"unsubstituted variable left in {expr!r}"
    return expr
