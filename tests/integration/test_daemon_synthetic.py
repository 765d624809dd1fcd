"""moed and moe-run on synthetic models (`--model synthetic:<name>[-small]`): random weights at a published shape,
served without files, with prompts as ids (no tokenizer) or through a borrowed tokenizer (`--tokenizer DIR`)."""

from __future__ import annotations

import json
import subprocess

import grpc

from moed_harness import MODEL_DIR, binary, rpc_error

SMALL = "synthetic:olmoe-1b-7b-small"
PROMPT = [5, 77, 301, 12, 9, 450, 3]


def moe_run_ids(model: str, ids: list[int], max_tokens: int) -> list[int]:
    out = subprocess.run([str(binary("moe-run")), "--model", model, "--backend", "cpu", "--prompt-ids",
                          ",".join(map(str, ids)), "--max-tokens", str(max_tokens), "--temperature", "0", "--json"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["output_ids"]


def test_synthetic_model_serves_ids_equal_to_moe_run(make_daemon):
    d = make_daemon("--model", SMALL)
    info = d.client.info(timeout=10)
    # OLMoE-1B-7B's routing (64 experts, top-8), shrunk: 2 layers, vocab 512.
    assert (info.num_experts, info.top_k, info.num_layers, info.vocab_size) == (64, 8, 2, 512)
    c = d.client.complete(prompt_ids=PROMPT, temperature=0, max_tokens=12, ignore_eos=True, timeout=60)
    assert c.token_ids == moe_run_ids(SMALL, PROMPT, 12)
    assert c.text == "".join(f"<{t}>" for t in c.token_ids)  # no tokenizer: ids stream as "<id>"


def test_text_prompt_without_a_tokenizer_names_the_flag(make_daemon):
    d = make_daemon("--model", SMALL)
    err = rpc_error(lambda: d.client.complete("hello", max_tokens=2, timeout=30))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "prompt_ids" in err.details() and "--tokenizer" in err.details()


def run_moed(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(binary("moed")), "--host", "127.0.0.1", "--port", "0", "--metrics-port", "0",
                           "--backend", "cpu", *args], capture_output=True, text=True, timeout=60)


def test_unknown_synthetic_model_exits_2_listing_the_known_ones():
    out = run_moed("--model", "synthetic:no-such-model")
    assert out.returncode == 2
    assert "no-such-model" in out.stderr and "olmoe-1b-7b" in out.stderr and "qwen3-30b-a3b" in out.stderr


def test_a_tokenizer_larger_than_the_vocabulary_is_refused():
    out = run_moed("--model", SMALL, "--tokenizer", str(MODEL_DIR))
    assert out.returncode == 2
    assert "--model" in out.stderr and "vocabulary (4096)" in out.stderr and "(512)" in out.stderr
