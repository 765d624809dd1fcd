"""The Dockerfile (no docker engine in CI, so it is linted and parsed, not built): hadolint clean,
multi-stage CUDA devel → runtime, non-root, built-in model included, moed as the entrypoint."""
import json
import re
import subprocess

from .promql_names import DEPLOY, ROOT
from .tools import tool

DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
DOCKERIGNORE = DEPLOY / "docker" / "Dockerfile.dockerignore"


def instructions():
    """[(INSTRUCTION, arguments)] with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def stages():
    """Each build stage's FROM argument and its instructions."""
    out = []
    for word, rest in instructions():
        if word == "FROM":
            out.append({"from": rest, "body": []})
        elif out:
            out[-1]["body"].append((word, rest))
    return out


def test_hadolint_clean():
    proc = subprocess.run([tool("hadolint"), "--failure-threshold", "warning", str(DOCKERFILE)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_multi_stage_cuda_devel_to_runtime():
    s = stages()
    assert len(s) >= 2
    assert re.match(r"nvidia/cuda:\S*devel\S* AS build$", s[0]["from"]), s[0]["from"]
    assert re.match(r"nvidia/cuda:\S*runtime\S*( AS \w+)?$", s[-1]["from"]), s[-1]["from"]
    copies = [rest for word, rest in s[-1]["body"] if word == "COPY"]
    assert any(c.startswith("--from=build /opt/moed ") for c in copies), copies


def test_runtime_runs_as_non_root():
    users = [rest for word, rest in stages()[-1]["body"] if word == "USER"]
    assert users, "final stage has no USER"
    user = users[-1].split(":")[0]
    assert user.isdigit() and int(user) != 0, "USER must be a numeric non-root uid (runAsNonRoot checks it)"


def test_builtin_model_is_in_the_image_and_is_the_default():
    body = stages()[-1]["body"]
    copies = [rest.split() for word, rest in body if word == "COPY"]
    model = [c for c in copies if "models/fortune-moe" in c[-2]]
    assert model, "the built-in model is not copied into the runtime image"
    dest = model[0][-1]
    assert (ROOT / "models" / "fortune-moe" / "config.json").exists()
    env = " ".join(rest for word, rest in body if word == "ENV")
    assert f"MOED_MODEL={dest}" in env


def test_entrypoint_is_moed_with_flags_from_the_environment():
    body = stages()[-1]["body"]
    [entry] = [json.loads(rest) for word, rest in body if word == "ENTRYPOINT"]
    assert entry[0].endswith("/moed") and len(entry) == 1, entry
    assert not [w for w, _ in body if w == "CMD"], "flags come from MOED_* variables, not CMD"
    env = " ".join(rest for word, rest in body if word == "ENV")
    for var in ("MOED_HOST=0.0.0.0", "MOED_PORT=50051", "MOED_METRICS_PORT=9400"):
        assert var in env
    flags = set(re.findall(r"ABSL_FLAG\(\s*[\w:]+\s*,\s*(\w+)\s*,", (ROOT / "server" / "flags.cc").read_text()))
    for key in re.findall(r"\b(MOED_\w+)=", env):
        assert key[5:].lower() in flags, f"ENV {key} is not a moed flag"


def test_copied_sources_exist_and_pass_the_dockerignore():
    ignore = DOCKERIGNORE.read_text().split()
    for word, rest in instructions():
        if word != "COPY" or rest.startswith("--from"):
            continue
        for src in [a for a in rest.split()[:-1] if not a.startswith("--")]:
            assert (ROOT / src).exists(), f"COPY source {src} does not exist in the repository"
            assert f"!{src}" in ignore or f"!{src.rstrip('/')}/" in ignore, f"{src} is excluded by .dockerignore"
