"""moed serving DeepSeek's shapes (synthetic, small): MLA's latent KV cache in GetModelInfo, 256 experts with
group-limited (noaux_tc) routing and a shared expert through generation, expert stats, capacity drops, per-expert
metrics within the budget and a readable `moectl stats`."""

from __future__ import annotations

import json
import subprocess

from moed_harness import binary, run_tool

V3 = "synthetic:deepseek-v3-4l-small"
V2_LITE = "synthetic:deepseek-v2-lite-small"
PROMPT = [5, 77, 301, 12, 9, 450, 3, 88, 140]


def moe_run_ids(model: str, ids: list[int], max_tokens: int, *flags: str) -> list[int]:
    out = subprocess.run([str(binary("moe-run")), "--model", model, "--backend", "cpu", "--prompt-ids",
                          ",".join(map(str, ids)), "--max-tokens", str(max_tokens), "--temperature", "0", "--json",
                          *flags],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["output_ids"]


def test_model_info_follows_the_attention_kind(make_daemon):
    for model, shared in ((V3, 1), (V2_LITE, 2)):
        info = make_daemon("--model", model).client.info(timeout=10)
        assert info.family == ("deepseek_v3" if model == V3 else "deepseek_v2")
        assert info.attention == "mla" and info.kv_lora_rank == 32 and info.qk_rope_head_dim == 16
        # Per token and layer the cache holds the latent (32) and the rope key (16), fp32: not heads × (k + v).
        assert info.kv_cache_bytes_per_token == info.num_layers * (32 + 16) * 4
        assert info.num_shared_experts == shared and info.shared_expert


def test_v3_generation_stats_drops_and_metrics(make_daemon):
    d = make_daemon("--model", V3, "--moe-capacity-factor", "1.0")
    info = d.client.info(timeout=10)
    assert (info.num_experts, info.top_k, info.num_layers) == (256, 8, 2)
    c = d.client.complete(prompt_ids=PROMPT, temperature=0, max_tokens=10, ignore_eos=True, timeout=120)
    # One request: the prompt is one prefill step in both, so both drop the same assignments.
    assert c.token_ids == moe_run_ids(V3, PROMPT, 10, "--moe-capacity-factor", "1.0")
    st = d.client.expert_stats(timeout=10)
    routed, dropped = list(st.routed_tokens), list(st.dropped_tokens)
    processed = len(PROMPT) + len(c.token_ids) - 1
    assert sum(routed[:256]) == 0, "layer 0 is dense"
    assert sum(routed[256:]) == processed * 8
    assert 0 < sum(dropped[256:]) < sum(routed[256:]), "capacity 1.0 over 256 experts drops some prefill tokens"
    # 2 layers × 256 experts = 512 label sets: within the default per-expert budget (4096), so series per expert.
    m = d.metrics()
    assert m.get("moed_expert_tokens_total", layer="1") == processed * 8
    table = run_tool("moectl", ["--addr", d.addr, "stats"])
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert max(len(line) for line in lines) < 200, "256 experts are summarised per layer, not printed as columns"
    assert any("layer   1:" in line and "of 256 idle" in line for line in lines), table.stdout


def test_v2_lite_serves_what_moe_run_computes(make_daemon):
    d = make_daemon("--model", V2_LITE)
    c = d.client.complete(prompt_ids=PROMPT, temperature=0, max_tokens=12, ignore_eos=True, timeout=120)
    assert c.token_ids == moe_run_ids(V2_LITE, PROMPT, 12)
