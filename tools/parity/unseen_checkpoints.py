#!/usr/bin/env python3
"""Parity of moe-run with transformers on checkpoints the tests have never seen.

For each family (DeepSeek-V2/V3 included) it builds a random checkpoint with transformers at shapes unlike the fixtures
(other hidden sizes, head counts and GQA ratios, expert counts, top-k, dense layers, head_dim ≠ hidden/heads,
normalised and unnormalised top-k), saves it in bf16 (Mixtral sharded) with the classic hub config spelling (top-level
`rope_theta`, `num_experts` / `num_local_experts`), borrows the matching fixture's tokenizer, and compares:
  - last-position logits (float32 reference from the bf16 weights): max |moe-run − transformers| ≤ 2e-5 (measured
    0.7e-6 to 1.8e-6 with transformers 5.17 on these shapes; the bound leaves ~10x);
  - 16 greedy tokens, up to the first step whose top-2 margin is < 1e-3.

Also: moe-run's tokenization against transformers' tokenizers on awkward texts, for fortune-moe and every fixture.

Needs torch and transformers (not part of tests/requirements.txt: a one-off check, not a CI test), in tools/parity's
own venv (pinned in tools/parity/requirements.txt):
  python3 -m venv tools/parity/.venv && tools/parity/.venv/bin/pip install -r tools/parity/requirements.txt
  tools/parity/.venv/bin/python tools/parity/unseen_checkpoints.py [--build build] [--keep DIR]
Exit code 0 when every checkpoint matches.
"""
import argparse
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile
import zlib

import torch
import transformers

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
PROMPTS = [[5, 99, 300, 17, 42, 8, 250], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21]]
GREEDY = 16
LOGIT_TOLERANCE = 2e-5

# (name, transformers config class, fixture whose tokenizer to borrow, config kwargs, expert-count key on the hub)
CASES = [
    ("mixtral-h96-e4-top1-gqa3", "MixtralConfig", "tiny-mixtral",
     dict(hidden_size=96, intermediate_size=80, num_hidden_layers=3, num_attention_heads=6, num_key_value_heads=2,
          num_local_experts=4, num_experts_per_tok=1, rope_theta=50000.0, max_position_embeddings=256),
     "num_local_experts"),
    ("qwen2moe-e6-top3-dense1", "Qwen2MoeConfig", "tiny-qwen2-moe",
     dict(hidden_size=48, intermediate_size=64, moe_intermediate_size=24, shared_expert_intermediate_size=40,
          num_hidden_layers=3, num_attention_heads=6, num_key_value_heads=3, num_experts=6, num_experts_per_tok=3,
          norm_topk_prob=False, mlp_only_layers=[1], rope_theta=10000.0, max_position_embeddings=256),
     "num_experts"),
    ("qwen3moe-e12-top2-hd24-norm", "Qwen3MoeConfig", "tiny-qwen3-moe",
     dict(hidden_size=64, intermediate_size=96, moe_intermediate_size=40, num_hidden_layers=2, num_attention_heads=4,
          num_key_value_heads=1, head_dim=24, num_experts=12, num_experts_per_tok=2, norm_topk_prob=True,
          rope_theta=1000000.0, max_position_embeddings=256),
     "num_experts"),
    ("olmoe-e10-top3-h80", "OlmoeConfig", "tiny-olmoe",
     dict(hidden_size=80, intermediate_size=48, num_hidden_layers=2, num_attention_heads=5, num_key_value_heads=5,
          num_experts=10, num_experts_per_tok=3, norm_topk_prob=False, rope_theta=10000.0,
          max_position_embeddings=256),
     "num_experts"),
]

# DeepSeek shapes unlike the tiny-deepseek-* fixtures: other head/latent/rope widths, q LoRA on and off, other group
# counts, unequal yarn mscales, linear RoPE, rope_interleave off, a random selection bias, no renormalisation.
CASES += [
    ("dsv2-h48-nolora-greedy-dense2", "DeepseekV2Config", "tiny-deepseek-v2-lite",
     dict(hidden_size=48, intermediate_size=72, moe_intermediate_size=20, num_hidden_layers=4, num_attention_heads=3,
          num_key_value_heads=3, q_lora_rank=None, kv_lora_rank=24, qk_nope_head_dim=8, qk_rope_head_dim=8,
          v_head_dim=12, n_routed_experts=12, n_shared_experts=1, num_experts_per_tok=3, first_k_dense_replace=2,
          topk_method="greedy", n_group=1, topk_group=1, routed_scaling_factor=1.0, max_position_embeddings=256,
          rope_parameters={"rope_type": "default", "rope_theta": 20000.0}),
     "n_routed_experts"),
    ("dsv2-e12-group3-yarn-mscales", "DeepseekV2Config", "tiny-deepseek-v2",
     dict(hidden_size=64, intermediate_size=80, moe_intermediate_size=16, num_hidden_layers=3, num_attention_heads=4,
          num_key_value_heads=4, q_lora_rank=20, kv_lora_rank=40, qk_nope_head_dim=12, qk_rope_head_dim=20,
          v_head_dim=16, n_routed_experts=12, n_shared_experts=2, num_experts_per_tok=4, first_k_dense_replace=1,
          topk_method="group_limited_greedy", n_group=3, topk_group=2, routed_scaling_factor=2.0,
          max_position_embeddings=1024,
          rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 8.0, "mscale": 1.0,
                           "mscale_all_dim": 0.5, "original_max_position_embeddings": 128, "beta_fast": 16,
                           "beta_slow": 2}),
     "n_routed_experts"),
    ("dsv3-e8-group2-linear-nointerleave", "DeepseekV3Config", "tiny-deepseek-v3",
     dict(hidden_size=40, intermediate_size=64, moe_intermediate_size=12, num_hidden_layers=3, num_attention_heads=2,
          num_key_value_heads=2, q_lora_rank=24, kv_lora_rank=16, qk_nope_head_dim=16, qk_rope_head_dim=8,
          v_head_dim=20, n_routed_experts=8, n_shared_experts=2, num_experts_per_tok=2, first_k_dense_replace=1,
          n_group=2, topk_group=1, norm_topk_prob=False, routed_scaling_factor=1.5, rope_interleave=False,
          max_position_embeddings=256, rope_parameters={"rope_type": "linear", "rope_theta": 10000.0, "factor": 2.0}),
     "n_routed_experts"),
]


def classic_config(path: pathlib.Path, expert_key: str) -> None:
    """Rewrites config.json in the hub's older spelling: top-level rope_theta and the family's expert-count key."""
    cfg = json.loads(path.read_text())
    rope = cfg.pop("rope_parameters", None) or {}
    cfg["rope_theta"] = rope.pop("rope_theta", cfg.get("rope_theta"))
    if rope.get("rope_type", "default") != "default":  # scaled RoPE: the hub's rope_scaling with "type"
        rope["type"] = rope.pop("rope_type")
        cfg["rope_scaling"] = rope
    for key in ("num_experts", "num_local_experts"):
        if key in cfg and key != expert_key:
            cfg[expert_key] = cfg.pop(key)
    path.write_text(json.dumps(cfg, indent=2))


def build(name, cls, fixture, kwargs, expert_key, out: pathlib.Path):
    src_cfg = json.loads((FIXTURES / fixture / "config.json").read_text())
    config = getattr(transformers, cls)(vocab_size=src_cfg["vocab_size"], eos_token_id=src_cfg.get("eos_token_id"),
                                        bos_token_id=src_cfg.get("bos_token_id"), tie_word_embeddings=False,
                                        **kwargs)
    torch.manual_seed(zlib.crc32(name.encode()))
    model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    with torch.no_grad():
        for p in model.parameters():  # larger weights than the default init, so routing and logits are not flat
            p.normal_(0.0, 0.08)
        for n, p in model.named_parameters():
            if "norm" in n:
                p.fill_(1.0).add_(torch.randn_like(p) * 0.1)
        for n, b in model.named_buffers():  # DeepSeek-V3's selection bias: chooses experts, never weighs them
            if n.endswith("e_score_correction_bias"):
                b.normal_(0.0, 0.05)
    # Mixtral is written sharded (model.safetensors.index.json + shards), the others as one file.
    shard = "200KB" if cls == "MixtralConfig" else "1GB"
    model.to(torch.bfloat16).save_pretrained(out, safe_serialization=True, max_shard_size=shard)
    classic_config(out / "config.json", expert_key)
    for f in (FIXTURES / fixture).iterdir():
        if f.name.startswith("tokenizer"):
            shutil.copy(f, out / f.name)
    # The reference is transformers reading the saved checkpoint (classic spelling, bf16) back in float32, as a user's
    # download would be read.
    return transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()


def reference(model, ids):
    with torch.no_grad():
        x = torch.tensor([ids])
        logits = model(x).logits[0, -1].float()
        greedy, margins = [], []
        seq = list(ids)
        for _ in range(GREEDY):
            row = model(torch.tensor([seq])).logits[0, -1].float()
            top2 = torch.topk(row, 2).values
            tok = int(torch.argmax(row))
            greedy.append(tok)
            margins.append(float(top2[0] - top2[1]))
            seq.append(tok)
    return logits, greedy, margins


def moe_run(build_dir, model_dir, ids, tmp):
    logits_file = tmp / "logits.json"
    cmd = [str(build_dir / "moe-run"), "--model", str(model_dir), "--prompt-ids", ",".join(map(str, ids)),
           "--max-tokens", str(GREEDY), "--temperature", "0", "--backend", "cpu", "--json", "--logits-out",
           str(logits_file)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"moe-run failed ({out.returncode}): {out.stderr.strip()}")
    return torch.tensor(json.loads(logits_file.read_text())), json.loads(out.stdout)["output_ids"]


TEXTS = ["Hello, world!", "  leading and   inner   spaces\tand\ttabs\n\nnew lines", "I'm sure you'll've done it",
         "numbers 1234567 3.14159 -42 1e10", "Ünïcödé — “quotes” ½ ∑ 東京 안녕하세요 привет", "emoji 🙂👍🏽 and  🚀",
         "code: def f(x):\n    return x**2  # square", "MiXeD CaSe wOrDs and ALLCAPS", "a" * 50, "  ", "\u00e9\u0301"]


def tokenizer_parity(build_dir) -> int:
    """moe-run's prompt ids against transformers' tokenizer on awkward texts, for every tokenizer in the tree."""
    failures = 0
    for d in [ROOT / "models" / "fortune-moe", *sorted(p for p in FIXTURES.iterdir() if p.is_dir())]:
        tok = transformers.AutoTokenizer.from_pretrained(d)
        bad = []
        for text in TEXTS:
            want = tok(text)["input_ids"]
            out = subprocess.run([str(build_dir / "moe-run"), "--model", str(d), "--prompt", text, "--max-tokens", "0",
                                  "--json", "--backend", "cpu"], capture_output=True, text=True)
            if out.returncode != 0:  # the directory does not load (e.g. a family moe-run lacks): say so once
                bad = [(None, out.stderr.strip(), None)]
                break
            got = json.loads(out.stdout)["prompt_ids"]
            if got != want:
                bad.append((text, got, want))
        failures += len(bad)
        loads = not (bad and bad[0][0] is None)
        print(f"{'ok  ' if not bad else 'FAIL'} tokenizer {d.name:28s} "
              + (f"{len(TEXTS) - len(bad)}/{len(TEXTS)} texts equal" if loads else "moe-run cannot load it"))
        for text, got, want in bad:
            print(f"     {got}" if text is None else f"     {text!r}\n       moe-run {got}\n       ref     {want}")
    return failures


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", type=pathlib.Path, default=ROOT / "build")
    ap.add_argument("--keep", type=pathlib.Path, help="write the checkpoints here instead of a temporary folder")
    args = ap.parse_args()
    failures = tokenizer_parity(args.build)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = pathlib.Path(tmp_name)
        base = args.keep or tmp
        for name, cls, fixture, kwargs, expert_key in CASES:
            out = base / name
            out.mkdir(parents=True, exist_ok=True)
            model = build(name, cls, fixture, kwargs, expert_key, out)
            for ids in PROMPTS:
                ref_logits, ref_greedy, margins = reference(model, ids)
                got_logits, got_greedy = moe_run(args.build, out, ids, tmp)
                err = float((got_logits - ref_logits).abs().max())
                upto = next((i for i, m in enumerate(margins) if m < 1e-3), GREEDY)
                greedy_ok = got_greedy[:upto] == ref_greedy[:upto]
                ok = err <= LOGIT_TOLERANCE and greedy_ok
                failures += 0 if ok else 1
                print(f"{'ok  ' if ok else 'FAIL'} {name:30s} prompt {len(ids):2d} tokens: max |logit err| {err:.2e}, "
                      f"greedy {'equal' if greedy_ok else 'DIFFERENT'} over {upto} steps"
                      + ("" if greedy_ok else f"\n     moe-run {got_greedy}\n     ref     {ref_greedy}"))
    print(f"transformers {transformers.__version__}, torch {torch.__version__}: "
          f"{'all match' if failures == 0 else f'{failures} mismatches'}")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
