"""Kustomize overlays render, pass strict schema validation offline, and meet moed's deployment policy."""
import copy
import json
import re
from pathlib import Path

import jsonschema
import pytest
from kubernetes_validate import utils as kv

from . import k8s_policy
from .promql_names import ROOT, adapter_rules

SERVICEMONITOR_SCHEMA = json.loads(
    (Path(__file__).parent / "schemas" / "servicemonitor-monitoring-v1.json").read_text())
# Oldest supported (native preStop sleep is on by default from 1.30) and the newest schemas shipped.
K8S_VERSIONS = ("1.30.0", kv.latest_version())
OVERLAYS = ("gpu", "cpu", "gpu+model-pvc")


def validate(obj, version):
    if obj["apiVersion"] == "monitoring.coreos.com/v1" and obj["kind"] == "ServiceMonitor":
        jsonschema.Draft202012Validator(SERVICEMONITOR_SCHEMA).validate(obj)
        return
    kv.validate(obj, version, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_expected_objects(rendered, overlay):
    kinds = sorted(o["kind"] for o in rendered[overlay])
    expected = ["ConfigMap", "Deployment", "HorizontalPodAutoscaler", "NetworkPolicy", "PodDisruptionBudget",
                "Service", "Service", "ServiceAccount", "ServiceMonitor"]
    if overlay.endswith("model-pvc"):
        expected = sorted(expected + ["PersistentVolumeClaim"])
    assert kinds == expected


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_passes_strict_schema_validation(rendered, overlay, version):
    for obj in rendered[overlay]:
        try:
            validate(obj, version)
        except (jsonschema.ValidationError, kv.SchemaNotFoundError) as e:
            pytest.fail(f"{overlay} {obj['kind']}/{obj['metadata']['name']} (Kubernetes {version}): "
                        f"{getattr(e, 'message', e)}")


def test_strict_validation_rejects_unknown_fields(rendered):
    deploy = copy.deepcopy(k8s_policy.one(rendered["gpu"], "Deployment"))
    deploy["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(jsonschema.ValidationError):
        validate(deploy, K8S_VERSIONS[-1])
    sm = copy.deepcopy(k8s_policy.one(rendered["gpu"], "ServiceMonitor"))
    sm["spec"]["endpoints"][0]["intervall"] = "15s"
    with pytest.raises(jsonschema.ValidationError):
        validate(sm, K8S_VERSIONS[-1])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_meets_policy(rendered, overlay):
    assert k8s_policy.violations(rendered[overlay], gpu=overlay.startswith("gpu")) == []


def _pod(objs):
    return k8s_policy.one(objs, "Deployment")["spec"]["template"]["spec"]


def _main(objs):
    return _pod(objs)["containers"][0]


def _flags(objs):
    return k8s_policy.one(objs, "ConfigMap")["data"]


MUTATIONS = {
    "root user": (lambda o: _pod(o)["securityContext"].update(runAsNonRoot=False, runAsUser=0), "runAsNonRoot"),
    "privilege escalation": (lambda o: _main(o)["securityContext"].update(allowPrivilegeEscalation=True),
                             "allowPrivilegeEscalation"),
    "capabilities kept": (lambda o: _main(o)["securityContext"]["capabilities"].update(drop=["NET_RAW"]),
                          "drop ALL"),
    "writable root": (lambda o: _main(o)["securityContext"].update(readOnlyRootFilesystem=False),
                      "readOnlyRootFilesystem"),
    "unconfined seccomp": (lambda o: [_pod(o)["securityContext"].update(seccompProfile={"type": "Unconfined"}),
                                      _main(o)["securityContext"].pop("seccompProfile")], "seccomp"),
    "http probe": (lambda o: _main(o).update(livenessProbe={"httpGet": {"port": 9400, "path": "/metrics"}}),
                   "not a native gRPC probe"),
    "named probe port": (lambda o: _main(o)["readinessProbe"]["grpc"].update(port="grpc"), "integer gRPC port"),
    "probe on another port": (lambda o: _flags(o).update(MOED_HEALTH_PORT="50053"), "integer gRPC port 50053"),
    "tls without a health port": (lambda o: _flags(o).pop("MOED_HEALTH_PORT"), "kubelet's gRPC probes cannot"),
    "no startup probe": (lambda o: _main(o).pop("startupProbe"), "startupProbe missing"),
    "short grace": (lambda o: _flags(o).update(MOED_SHUTDOWN_TIMEOUT="1m"), "terminationGracePeriodSeconds"),
    "no preStop": (lambda o: _main(o).pop("lifecycle"), "preStop"),
    "tmp not emptyDir": (lambda o: _main(o)["volumeMounts"].pop(), "/tmp"),
    "no gpu limit": (lambda o: _main(o)["resources"]["limits"].pop("nvidia.com/gpu"), "nvidia.com/gpu limit"),
    "unscraped service": (lambda o: k8s_policy.one(o, "Service", "moed")["metadata"]["labels"].clear(),
                          "ServiceMonitor must select"),
    "replicas beside HPA": (lambda o: k8s_policy.one(o, "Deployment")["spec"].update(replicas=3), "replicas"),
    "reflection on": (lambda o: _flags(o).update(MOED_ENABLE_REFLECTION="true"), "MOED_ENABLE_REFLECTION"),
    "no network policy": (lambda o: o.remove(k8s_policy.one(o, "NetworkPolicy")), "NetworkPolicy"),
}


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_policy_catches_broken_manifest(rendered, name):
    mutate, expected = MUTATIONS[name]
    objs = copy.deepcopy(rendered["gpu"])
    mutate(objs)
    found = k8s_policy.violations(objs, gpu=True)
    assert any(expected in v for v in found), f"{name}: expected a violation mentioning {expected!r}, got {found}"


def test_cpu_overlay_rejects_a_gpu_request(rendered):
    objs = copy.deepcopy(rendered["cpu"])
    _main(objs)["resources"]["limits"]["nvidia.com/gpu"] = 1
    assert any("requests a GPU" in v for v in k8s_policy.violations(objs, gpu=False))


def test_hpa_metric_is_served_by_the_adapter_rule(rendered):
    hpa = k8s_policy.one(rendered["gpu"], "HorizontalPodAutoscaler")
    [metric] = hpa["spec"]["metrics"]
    assert metric["type"] == "Pods"
    served = {r["name"]["as"]: r for r in adapter_rules()}
    name = metric["pods"]["metric"]["name"]
    assert name in served, f"HPA metric {name} is not produced by prometheus-adapter/config.yaml ({list(served)})"
    rule = served[name]
    assert rule["resources"]["overrides"]["pod"] == {"resource": "pod"}
    assert rule["seriesQuery"].startswith("moed_requests_waiting{")


def test_duration_parsing():
    assert k8s_policy.parse_duration("30s") == 30
    assert k8s_policy.parse_duration("1m30s") == 90
    assert k8s_policy.parse_duration("500ms") == 0.5
    with pytest.raises(ValueError):
        k8s_policy.parse_duration("30")


def test_configmap_keys_are_moed_flags(rendered):
    """Every MOED_* variable the manifests set names a flag the daemon defines (server/flags.cc)."""
    flags = set(re.findall(r"ABSL_FLAG\(\s*[\w:]+\s*,\s*(\w+)\s*,", (ROOT / "server" / "flags.cc").read_text()))
    assert flags, "no ABSL_FLAG found in server/flags.cc"
    for overlay in OVERLAYS:
        for key in k8s_policy.one(rendered[overlay], "ConfigMap")["data"]:
            assert key.startswith("MOED_") and key[5:].lower() in flags, f"{overlay}: {key} is not a moed flag"


def test_optional_components_render_and_validate(tmp_path):
    """gpu + model-pvc + model-fill + runtime-class: the fill Job writes the PVC the pods read, with an optional
    token secret; runtimeClassName is set; everything passes strict validation."""
    import yaml

    from .tools import K8S, kustomize

    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os_rel(K8S / "overlays" / "gpu", tmp_path)],
        "components": [os_rel(K8S / "components" / c, tmp_path) for c in ("model-pvc", "model-fill", "runtime-class")],
    }))
    objs = kustomize(tmp_path)
    for obj in objs:
        validate(obj, kv.latest_version())
    job = k8s_policy.one(objs, "Job")
    pod = job["spec"]["template"]["spec"]
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == "moed-models"
    token = [e for e in pod["containers"][0]["env"] if e["name"] == "HF_TOKEN"][0]
    assert token["valueFrom"]["secretKeyRef"]["optional"] is True
    assert "huggingface_cli download" in pod["containers"][0]["args"][0]
    assert _pod(objs)["runtimeClassName"] == "nvidia"
    assert k8s_policy.violations(objs, gpu=True) == []


def os_rel(path, start):
    import os

    return os.path.relpath(path, start)
