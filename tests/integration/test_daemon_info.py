"""GetModelInfo, GetExpertStats and Tokenize against config.json and moe-run; moectl info/stats/
tokenize/health and the moe-bench load generator against a live daemon."""

from __future__ import annotations

import json

from moed_harness import MODEL_DIR, model_config, moe_run, run_tool

CFG = model_config()
LAYERS, EXPERTS, TOP_K = CFG["num_hidden_layers"], CFG["num_local_experts"], CFG["num_experts_per_tok"]


def test_model_info_matches_config(daemon):
    info = daemon.client.info(timeout=10)
    assert info.family == CFG["model_type"]
    assert (info.num_layers, info.num_experts, info.top_k) == (LAYERS, EXPERTS, TOP_K)
    assert info.context_length == CFG["max_position_embeddings"]
    assert info.vocab_size == CFG["vocab_size"] and info.hidden_size == CFG["hidden_size"]
    assert (info.num_heads, info.num_kv_heads) == (CFG["num_attention_heads"], CFG["num_key_value_heads"])
    assert info.head_dim == CFG["hidden_size"] // CFG["num_attention_heads"]
    # GQA: the cache holds K and V per kv head, fp32 on the CPU backend.
    assert info.attention == "gqa" and info.kv_lora_rank == 0 and info.num_shared_experts == 0
    assert info.qk_rope_head_dim == info.v_head_dim == info.head_dim
    assert info.kv_cache_bytes_per_token == LAYERS * 2 * info.num_kv_heads * info.head_dim * 4
    assert info.backend == "cpu"
    assert list(info.eos_token_ids) == [CFG["eos_token_id"]]
    assert info.max_tokens_limit == 512  # --max-tokens-limit of the shared daemon


def test_tokenize_equals_moe_run_prompt_ids(daemon):
    for text in ["Never trust a computer", "Ünïcödé ☃ 日本語", "  two  spaces\nand a newline", "x"]:
        assert daemon.client.tokenize(text, timeout=10) == moe_run(text, 0)["prompt_ids"], text


def test_expert_stats_count_each_processed_token_top_k_times(daemon):
    before = daemon.client.expert_stats(timeout=10)
    assert (before.num_layers, before.num_experts, before.top_k) == (LAYERS, EXPERTS, TOP_K)
    assert len(before.routed_tokens) == len(before.dropped_tokens) == LAYERS * EXPERTS
    c = daemon.client.complete("Count my experts", temperature=0, max_tokens=11, ignore_eos=True, timeout=60)
    after = daemon.client.expert_stats(timeout=10)
    # Other tests run before, never concurrently: the difference is this request alone.
    delta = [a - b for a, b in zip(after.routed_tokens, before.routed_tokens)]
    processed = c.prompt_tokens + c.completion_tokens - 1  # the last sampled token is never fed back
    for layer in range(LAYERS):
        assert sum(delta[layer * EXPERTS:(layer + 1) * EXPERTS]) == processed * TOP_K, layer
    assert after.steps > before.steps
    assert sum(after.dropped_tokens) == 0  # dropless by default


def test_moectl_info_stats_tokenize_health(daemon):
    addr = ["--addr", daemon.addr]
    info = run_tool("moectl", [*addr, "info", "--json"])
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["num_experts"] == EXPERTS
    stats = run_tool("moectl", [*addr, "stats", "--json"])
    assert stats.returncode == 0, stats.stderr
    assert len(json.loads(stats.stdout)["routed_tokens"]) == LAYERS * EXPERTS
    table = run_tool("moectl", [*addr, "stats"])
    assert table.returncode == 0 and len([ln for ln in table.stdout.splitlines() if ln.split()[:1] == ["3"]]) >= 1
    tok = run_tool("moectl", [*addr, "tokenize", "Never trust a computer"])
    assert tok.returncode == 0
    assert list(map(int, tok.stdout.split())) == moe_run("Never trust a computer", 0)["prompt_ids"]
    health = run_tool("moectl", [*addr, "health"])
    assert (health.returncode, health.stdout) == (0, "SERVING\n")


def test_moe_bench_closed_loop_and_rate(daemon, tmp_path):
    out = run_tool("moe-bench", ["--addr", daemon.addr, "--concurrency", "4", "--num-requests", "12",
                                 "--prompt-len", "10", "--output-len", "8", "--ignore-eos"])
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert r["requests"] == {"ok": 12, "failed": 0} and r["errors"] == {}
    assert r["input_tokens"] == 12 * 10 and r["output_tokens"] == 12 * 8
    assert 0 < r["ttft_ms"]["p50"] <= r["ttft_ms"]["p90"] <= r["ttft_ms"]["p99"] <= r["e2e_ms"]["max"]
    assert r["itl_ms"]["count"] > 0 and r["output_tokens_per_s"] > 0

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Never trust a computer\nA fool and his money\n")
    out = run_tool("moe-bench", ["--addr", daemon.addr, "--rate", "20", "--duration", "1s", "--prompts-file",
                                 str(prompts), "--output-len", "4"], timeout=60)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert r["requests"]["failed"] == 0 and r["requests"]["ok"] >= 1
    assert r["duration_s"] < 30
    assert run_tool("moe-bench", ["--addr", daemon.addr]).returncode == 2  # neither concurrency nor rate


def test_moe_bench_prompt_ids_file(daemon, tmp_path):
    """--prompt-ids-file sends exactly the given ids (the peer bench gives llama-server the same ones): 3 prompts of
    5, 7 and 2 ids over 6 requests, each used twice; a word that is not an id is a usage error naming the line."""
    ids = tmp_path / "ids.txt"
    ids.write_text("5 6 7 8 9\n\n10 11 12 13 14 15 16\n  17 18 \n")
    out = run_tool("moe-bench", ["--addr", daemon.addr, "--concurrency", "2", "--num-requests", "6",
                                 "--prompt-ids-file", str(ids), "--output-len", "3", "--ignore-eos"])
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert r["requests"] == {"ok": 6, "failed": 0}
    assert r["input_tokens"] == 2 * (5 + 7 + 2) and r["output_tokens"] == 6 * 3
    ids.write_text("5 6\n7 x 9\n")
    bad = run_tool("moe-bench", ["--addr", daemon.addr, "--concurrency", "1", "--prompt-ids-file", str(ids)])
    assert bad.returncode == 2 and "line 2" in bad.stderr and "'x'" in bad.stderr
    both = run_tool("moe-bench", ["--addr", daemon.addr, "--concurrency", "1", "--prompt-ids-file", str(ids),
                                  "--prompt-len", "4"])
    assert both.returncode == 2 and "--prompt-ids-file" in both.stderr
