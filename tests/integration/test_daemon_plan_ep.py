"""moectl plan-ep (issue 16): an expert-parallel placement of the daemon's observed loads — every expert placed,
equal slots per GPU, loads conserved, balancedness = mean / max — and the same plan from a saved stats file."""
import json
import time

import pytest

from moed_harness import model_config, run_tool

CONFIG = model_config()
LAYERS = CONFIG["num_hidden_layers"]
EXPERTS = CONFIG["num_local_experts"]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """A private, otherwise idle moed that served one request (the shared one may still be finishing others)."""
    from moed_harness import Daemon
    daemon = Daemon(tmp_path_factory.mktemp("moed-plan-ep")).start()
    daemon.client.complete("Plan my experts across GPUs", temperature=0, max_tokens=10, ignore_eos=True, timeout=60)
    # The stream ends before the engine thread publishes that step's stats: wait until they have settled.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if daemon.metrics().get("moed_engine_steps_total") == daemon.client.expert_stats(timeout=10).steps:
            break
        time.sleep(0.05)
    yield daemon
    daemon.stop()


@pytest.mark.parametrize("gpus,redundant", [(1, 0), (4, 0), (4, 4), (3, 1), (16, 8)])
def test_plan_places_every_expert_and_conserves_load(loaded, gpus, redundant):
    out = run_tool("moectl", ["--addr", loaded.addr, "plan-ep", "--gpus", str(gpus), "--redundant", str(redundant),
                              "--json"])
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    stats = loaded.client.expert_stats(timeout=10)
    assert plan["slots_per_gpu"] == (EXPERTS + redundant) // gpus
    assert len(plan["layers"]) == LAYERS
    sum_mean = sum_max = 0.0
    for layer in plan["layers"]:
        l = layer["layer"]
        assert all(len(slots) == plan["slots_per_gpu"] for slots in layer["gpu_experts"])
        placed = sorted(e for slots in layer["gpu_experts"] for e in slots)
        assert set(placed) == set(range(EXPERTS)) and len(placed) == EXPERTS + redundant
        assert sum(layer["replicas"]) == EXPERTS + redundant
        # The layer's load per step is conserved across GPUs (the window is all of it on this young daemon).
        counts = stats.window_routed_tokens[l * EXPERTS:(l + 1) * EXPERTS]
        assert sum(layer["gpu_load"]) == pytest.approx(sum(counts) / stats.window_steps)
        assert layer["balancedness"] == pytest.approx(
            sum(layer["gpu_load"]) / gpus / max(layer["gpu_load"]))
        sum_mean += sum(layer["gpu_load"]) / gpus
        sum_max += max(layer["gpu_load"])
    assert plan["balancedness"] == pytest.approx(sum_mean / sum_max)
    if gpus == 1:
        assert plan["all_to_all_bytes_per_step"] == 0 and plan["balancedness"] == pytest.approx(1.0)
    else:
        assert plan["all_to_all_bytes_per_step"] > 0


def test_replicas_do_not_lower_balancedness(loaded):
    def balancedness(redundant):
        out = run_tool("moectl", ["--addr", loaded.addr, "plan-ep", "--gpus", "4", "--redundant", str(redundant),
                                  "--json"])
        return json.loads(out.stdout)["balancedness"]
    assert balancedness(4) >= balancedness(0)


def test_plan_from_a_saved_stats_file_and_bad_flags(loaded, tmp_path):
    saved = tmp_path / "stats.json"
    stats = run_tool("moectl", ["--addr", loaded.addr, "stats", "--json"])
    saved.write_text(stats.stdout)
    live = run_tool("moectl", ["--addr", loaded.addr, "plan-ep", "--gpus", "4", "--json"])
    offline = run_tool("moectl", ["plan-ep", "--gpus", "4", "--loads", str(saved), "--hidden-size",
                                  str(CONFIG["hidden_size"]), "--json"])
    assert offline.returncode == 0, offline.stderr
    a, b = json.loads(live.stdout), json.loads(offline.stdout)
    assert a["layers"] == b["layers"] and a["all_to_all_bytes_per_step"] == b["all_to_all_bytes_per_step"]
    uneven = run_tool("moectl", ["--addr", loaded.addr, "plan-ep", "--gpus", "3", "--redundant", "0"])
    assert uneven.returncode == 2 and "multiple of gpus (3)" in uneven.stderr
    assert run_tool("moectl", ["plan-ep", "--gpus", "4", "--loads", str(saved)]).returncode == 2  # no --hidden-size
    assert run_tool("moectl", ["--addr", loaded.addr, "plan-ep"]).returncode == 2  # no --gpus
