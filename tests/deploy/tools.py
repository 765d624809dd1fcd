"""Finding the test tools (the venv's bin/ first) and rendering kustomize directories."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .promql_names import DEPLOY

K8S = DEPLOY / "k8s"


def tool(name):
    """Absolute path of a tool: the test venv's bin/ first (kubectl, hadolint), then PATH. Missing → fail."""
    venv_bin = Path(sys.executable).parent / name
    found = str(venv_bin) if venv_bin.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} not found next to {sys.executable} or on PATH: install tests/requirements.txt "
                    "(./moed.sh setup) and Debian's prometheus package")
    return found


def kustomize(directory):
    """`kubectl kustomize DIR` → the rendered objects."""
    proc = subprocess.run([tool("kubectl"), "kustomize", str(directory)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, f"kubectl kustomize {directory} failed:\n{proc.stderr}"
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]
