"""Fixtures for the deploy tests: the rendered kustomize overlays."""
import os
import tempfile

import pytest
import yaml

from .tools import K8S, kustomize


@pytest.fixture(scope="session")
def rendered():
    """Overlay name → its rendered objects: "gpu", "cpu", and "gpu+model-pvc" (gpu with the PVC component)."""
    out = {name: kustomize(K8S / "overlays" / name) for name in ("gpu", "cpu")}
    with tempfile.TemporaryDirectory(prefix="moed-kustomize-") as scratch:
        with open(os.path.join(scratch, "kustomization.yaml"), "w") as f:
            yaml.safe_dump({
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [os.path.relpath(K8S / "overlays" / "gpu", scratch)],
                "components": [os.path.relpath(K8S / "components" / "model-pvc", scratch)],
            }, f)
        out["gpu+model-pvc"] = kustomize(scratch)
    return out
