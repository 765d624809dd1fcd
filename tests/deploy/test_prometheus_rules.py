"""Prometheus rules: promtool checks them, unit-tests every alert both ways, and they name only real metrics."""
import subprocess

import pytest
import yaml

from . import exported_metrics
from .promql_names import DEPLOY, RULE_FILES, dashboard_queries, metric_names, rules
from .tools import tool

RULE_TESTS = DEPLOY / "prometheus" / "tests" / "alerts_test.yaml"
EXPECTED_ALERTS = {"MoedExpertHotspot", "MoedTokenDropRateHigh", "MoedExpertCacheHitRatioLow",
                   "MoedTimeToFirstTokenHigh", "MoedRequestsRejected", "MoedDown"}


def promtool(*args):
    proc = subprocess.run([tool("promtool"), *args], capture_output=True, text=True, timeout=120,
                          cwd=RULE_TESTS.parent)
    return proc.returncode, proc.stdout + proc.stderr


def test_promtool_check_rules():
    rc, out = promtool("check", "rules", *map(str, RULE_FILES))
    assert rc == 0, out


def test_promtool_test_rules():
    rc, out = promtool("test", "rules", str(RULE_TESTS))
    assert rc == 0, out


def test_promtool_test_rules_fails_on_a_wrong_expectation(tmp_path):
    broken = RULE_TESTS.read_text().replace("severity: critical", "severity: page")
    assert broken != RULE_TESTS.read_text()
    path = tmp_path / "broken_test.yaml"
    path.write_text(broken.replace("../", str(RULE_TESTS.parent.parent) + "/"))
    rc, out = promtool("test", "rules", str(path))
    assert rc != 0 and "FAILED" in out


def alerts():
    return [r for r in rules() if "alert" in r]


def test_the_alerts_the_issue_asks_for_exist():
    assert {a["alert"] for a in alerts()} == EXPECTED_ALERTS


@pytest.mark.parametrize("alert", alerts(), ids=lambda a: a["alert"])
def test_alert_has_severity_summary_description(alert):
    assert alert["labels"]["severity"] in {"critical", "warning", "info"}
    assert alert["annotations"]["summary"].strip()
    assert len(alert["annotations"]["description"].split()) >= 10
    assert alert.get("for"), "every alert waits before firing"


def readme_anchors():
    """GitHub's anchors of deploy/README.md's headings: lower case, spaces to '-', other punctuation dropped."""
    import re
    heads = re.findall(r"^#+ (.+)$", (DEPLOY / "README.md").read_text(), re.M)
    return {re.sub(r"[^a-z0-9 _-]", "", h.strip().lower()).replace(" ", "-") for h in heads}


@pytest.mark.parametrize("alert", alerts(), ids=lambda a: a["alert"])
def test_alert_runbook_points_at_its_readme_section(alert):
    url = alert["annotations"].get("runbook_url", "")
    path, _, anchor = url.partition("#")
    assert path == "deploy/README.md" and anchor == alert["alert"].lower(), url
    assert anchor in readme_anchors(), f"deploy/README.md has no section #{anchor}"


def test_every_alert_has_a_firing_and_a_quiet_unit_test():
    cases = {}
    for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for case in test.get("alert_rule_test", []):
            cases.setdefault(case["alertname"], set()).add("fires" if case["exp_alerts"] else "quiet")
    for name in EXPECTED_ALERTS:
        assert cases.get(name) == {"fires", "quiet"}, f"{name}: unit tests cover {cases.get(name)}"


def test_rules_name_only_exported_metrics_and_defined_recordings():
    recorded = {r["record"] for r in rules() if "record" in r}
    used = set().union(*(metric_names(r["expr"]) for r in rules()))
    for name in used:
        if ":" in name:
            assert name in recorded, f"recording rule {name} is used but never defined"
        elif name != "up":
            assert name in exported_metrics.SAMPLES, f"rules name {name}, which moed does not export"


def test_recording_rule_names_follow_convention():
    for r in rules():
        if "record" in r:
            assert r["record"].startswith("moed:") and r["record"].count(":") == 2, r["record"]


def test_dashboard_recordings_are_defined():
    recorded = {r["record"] for r in rules() if "record" in r}
    for title, t in dashboard_queries():
        for name in metric_names(t["expr"]):
            assert ":" not in name or name in recorded, f"panel {title!r} uses undefined {name}"
