#!/usr/bin/env python3
"""Writes transformers-made golden fixtures under tests/fixtures/: tiny random-weight bf16 checkpoints, each with a
golden.json computed by transformers itself (float32 on CPU, from the saved bf16 weights, read back as a user would).

Fixtures (see tests/fixtures/README.md for what each one checks and what transformers does with it):
  tiny-qwen3-moe-long   a prompt of 1100+ tokens: RoPE at positions past 1000
  tiny-mixtral-swa      Mixtral sliding_window 16 with prompts and greedy runs past it
  tiny-mixtral-hd24     Mixtral with an explicit head_dim (24) != hidden / heads (16)
  tiny-qwen2-moe-dense  qwen2_moe decoder_sparse_step 2 + mlp_only_layers: dense layers between MoE layers
  tiny-deepseek-v2-lite deepseek_v2, q_lora_rank null, greedy softmax top-k, default RoPE, hub config spelling
  tiny-deepseek-v2      deepseek_v2, q_lora_rank set, group_limited_greedy, YaRN, transformers-5 spelling
  tiny-deepseek-v3      deepseek_v3, sigmoid + e_score_correction_bias, noaux_tc, YaRN, interleaved RoPE, hub spelling

golden.json has the layout of the older fixtures (shared/README.md): cases[].prompt, input_ids, last_logits (rounded
to 1e-6), top5_logprobs, greedy [{token, margin}] (24 steps), greedy_text; plus min_routing_gap, the smallest gap
between the last selected and the first unselected expert score over every token and MoE layer of the prompt (a
gap near float rounding would make the expert choice fragile; the generator refuses one below 1e-4).

Run from the repository root in its own venv (tools/parity/requirements.txt):
  python3 -m venv tools/parity/.venv && tools/parity/.venv/bin/pip install -r tools/parity/requirements.txt
  tools/parity/.venv/bin/python tools/parity/make_fixtures.py [NAME ...]
The output is deterministic for the pinned versions (seeded per fixture name).
"""
import argparse
import json
import pathlib
import shutil
import sys
import zlib

import torch
import transformers
from safetensors import safe_open
from safetensors.torch import load_file, save_file

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import deepseek_tokenizer  # noqa: E402

GREEDY = 24
MIN_ROUTING_GAP = 1e-4
STANDARD_PROMPTS = ["The gating network decides which experts", "Mixture of Experts models scale parameters without",
                    "Hello, world! 123 + 456 = 579.", "Ünïcödé, emojis 🙂 and tabs\tstay intact"]
LONG_SENTENCES = [
    "Each token is sent to the experts whose router scores are highest, and the outputs are mixed by those scores.",
    "A shared expert sees every token, while the routed experts only see the tokens the gate assigns to them.",
    "When one expert receives far more tokens than the others, the load is imbalanced and throughput drops.",
    "Rotary position embeddings rotate pairs of query and key dimensions by angles that grow with the position.",
    "At position {n} the fastest rotating pair has turned about {n} radians, which is many full turns.",
    "The key value cache keeps the keys and values of earlier tokens so that decoding reads them instead.",
    "Paged attention stores that cache in fixed blocks of {m} tokens, allocated as the sequence grows.",
]
SWA_PROMPT = ("Sliding window attention lets each token see only the most recent positions, so a token at the end of "
              "this rather long prompt cannot attend to its first words at all.")
DEEPSEEK_PROMPTS = STANDARD_PROMPTS + ["数字 12345678 和 東京タワー, code: x=42;\n\treturn [a, b]"]


def long_prompt(min_tokens, tokenizer, start=0):
    """Sentences cycled (from sentence `start`) with varying numbers until the text has at least `min_tokens` ids."""
    parts, i = [], start
    while True:
        s = LONG_SENTENCES[i % len(LONG_SENTENCES)].format(n=100 + 37 * i, m=16 * (1 + i % 4))
        parts.append(s)
        text = " ".join(parts)
        if len(tokenizer(text)["input_ids"]) >= min_tokens:
            return text
        i += 1


def byte_bpe_tokenizer(out):
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(FIXTURES / "tiny-qwen3-moe" / f, out / f)


def sentencepiece_tokenizer(out):
    for f in ("tokenizer.json", "tokenizer.model", "tokenizer_config.json"):
        shutil.copy(FIXTURES / "tiny-mixtral" / f, out / f)


# --- config spellings -------------------------------------------------------------------------------------------

def hub_spelling(cfg, extra=None, drop=()):
    """transformers-5 config.json → the spelling hub checkpoints use: top-level rope_theta, rope_scaling {type, ...}
    (null for default RoPE), minus keys transformers 5 adds that the hub files do not carry."""
    rope = dict(cfg.pop("rope_parameters", None) or {})
    cfg["rope_theta"] = rope.pop("rope_theta", cfg.get("rope_theta"))
    rope_type = rope.pop("rope_type", "default")
    cfg["rope_scaling"] = None if rope_type == "default" else {"type": rope_type, **rope}
    # Keys transformers 5 writes that hub files do not carry (DeepSeek's head_dim / qk_head_dim are derived values).
    for key in ("layer_types", "dtype", "transformers_version", "output_router_logits", "head_dim", "qk_head_dim"):
        cfg.pop(key, None)
    for key in drop:
        cfg.pop(key, None)
    cfg["torch_dtype"] = "bfloat16"
    cfg.update(extra or {})
    return cfg


def v5_spelling(cfg, extra=None, drop=()):
    cfg.update(extra or {})
    return cfg


# --- the fixtures -----------------------------------------------------------------------------------------------

def common(vocab_tokenizer):
    src = json.loads((FIXTURES / vocab_tokenizer / "config.json").read_text())
    return dict(vocab_size=src["vocab_size"], bos_token_id=src.get("bos_token_id"), eos_token_id=src.get("eos_token_id"),
                tie_word_embeddings=False, rms_norm_eps=1e-5, initializer_range=0.08)


DEEPSEEK_TOKENS = dict(vocab_size=1024, bos_token_id=0, eos_token_id=1, tie_word_embeddings=False, rms_norm_eps=1e-6,
                       initializer_range=0.08)
MLA = dict(hidden_size=64, num_attention_heads=4, num_key_value_heads=4, kv_lora_rank=32, qk_nope_head_dim=16,
           qk_rope_head_dim=16, v_head_dim=24, intermediate_size=96, moe_intermediate_size=24, num_hidden_layers=3,
           first_k_dense_replace=1, max_position_embeddings=2048, attention_bias=False)

SPECS = {
    "tiny-qwen3-moe-long": dict(
        cls="Qwen3MoeConfig", tokenizer=byte_bpe_tokenizer, spelling=v5_spelling,
        config=dict(common("tiny-qwen3-moe"), hidden_size=64, intermediate_size=96, moe_intermediate_size=32,
                    num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16, num_experts=8,
                    num_experts_per_tok=2, norm_topk_prob=True, max_position_embeddings=2048,
                    rope_parameters={"rope_type": "default", "rope_theta": 10000.0}),
        prompts=lambda tok: [long_prompt(1100, tok), long_prompt(1030, tok, start=3), STANDARD_PROMPTS[0]]),
    "tiny-mixtral-swa": dict(
        cls="MixtralConfig", tokenizer=sentencepiece_tokenizer, spelling=v5_spelling,
        config=dict(common("tiny-mixtral"), hidden_size=64, intermediate_size=64, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, num_local_experts=4, num_experts_per_tok=2,
                    sliding_window=16, max_position_embeddings=512,
                    rope_parameters={"rope_type": "default", "rope_theta": 10000.0}),
        prompts=lambda tok: STANDARD_PROMPTS + [SWA_PROMPT]),
    "tiny-mixtral-hd24": dict(
        cls="MixtralConfig", tokenizer=sentencepiece_tokenizer, spelling=v5_spelling,
        config=dict(common("tiny-mixtral"), hidden_size=64, intermediate_size=64, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, head_dim=24, num_local_experts=4,
                    num_experts_per_tok=2, max_position_embeddings=512,
                    rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}),
        prompts=lambda tok: STANDARD_PROMPTS),
    "tiny-qwen2-moe-dense": dict(
        cls="Qwen2MoeConfig", tokenizer=byte_bpe_tokenizer, spelling=v5_spelling,
        # decoder_sparse_step 2: layers 1, 3, 5 sparse; mlp_only_layers [3]: layer 3 dense → MoE at 1 and 5 only.
        config=dict(common("tiny-qwen2-moe"), hidden_size=48, intermediate_size=80, moe_intermediate_size=24,
                    shared_expert_intermediate_size=40, num_hidden_layers=6, num_attention_heads=4,
                    num_key_value_heads=2, num_experts=8, num_experts_per_tok=2, norm_topk_prob=False,
                    decoder_sparse_step=2, mlp_only_layers=[3], max_position_embeddings=512,
                    rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}),
        prompts=lambda tok: STANDARD_PROMPTS),
    "tiny-deepseek-v2-lite": dict(
        cls="DeepseekV2Config", tokenizer=deepseek_tokenizer.write, spelling=hub_spelling,
        hub_extra=dict(architectures=["DeepseekV2ForCausalLM"], scoring_func="softmax", moe_layer_freq=1,
                       aux_loss_alpha=0.001, seq_aux=True),
        config=dict(DEEPSEEK_TOKENS, **MLA, q_lora_rank=None, n_routed_experts=16, num_experts_per_tok=4,
                    n_shared_experts=2, topk_method="greedy", n_group=1, topk_group=1, routed_scaling_factor=1.0,
                    norm_topk_prob=False, rope_parameters={"rope_type": "default", "rope_theta": 10000.0}),
        prompts=lambda tok: DEEPSEEK_PROMPTS),
    "tiny-deepseek-v2": dict(
        cls="DeepseekV2Config", tokenizer=deepseek_tokenizer.write, spelling=v5_spelling,
        config=dict(DEEPSEEK_TOKENS, **MLA, q_lora_rank=48, n_routed_experts=16, num_experts_per_tok=4,
                    n_shared_experts=2, topk_method="group_limited_greedy", n_group=4, topk_group=2,
                    routed_scaling_factor=4.0, norm_topk_prob=False,
                    rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                                     "original_max_position_embeddings": 512, "beta_fast": 32, "beta_slow": 1,
                                     "mscale": 0.707, "mscale_all_dim": 0.707}),
        prompts=lambda tok: DEEPSEEK_PROMPTS),
    "tiny-deepseek-v3": dict(
        cls="DeepseekV3Config", tokenizer=deepseek_tokenizer.write, spelling=hub_spelling,
        hub_extra=dict(architectures=["DeepseekV3ForCausalLM"], scoring_func="sigmoid", topk_method="noaux_tc",
                       moe_layer_freq=1, aux_loss_alpha=0.001, seq_aux=True, ep_size=1),
        hub_drop=["rope_interleave"],  # absent from the hub's V3 config.json: interleaved is the default there too
        config=dict(DEEPSEEK_TOKENS, **MLA, q_lora_rank=48, n_routed_experts=16, num_experts_per_tok=4,
                    n_shared_experts=1, n_group=4, topk_group=2, routed_scaling_factor=2.5, norm_topk_prob=True,
                    rope_interleave=True, num_mtp_layers=0,
                    rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                                     "original_max_position_embeddings": 512, "beta_fast": 32, "beta_slow": 1,
                                     "mscale": 1.0, "mscale_all_dim": 0.8}),
        selection_bias=0.1, prompts=lambda tok: DEEPSEEK_PROMPTS),
}


# --- building and the reference ---------------------------------------------------------------------------------

def randomize(model, seed, spec):
    """Weights larger than the default init (routing and logits not flat), norms near 1, a random selection bias."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.08)
        for n, p in model.named_parameters():
            if "norm" in n:
                p.fill_(1.0).add_(torch.randn_like(p) * 0.1)
        for n, b in model.named_buffers():
            if n.endswith("e_score_correction_bias"):
                b.copy_(torch.randn_like(b) * spec["selection_bias"])


def fp32_selection_bias(path):
    """DeepSeek-V3's hub checkpoints keep gate.e_score_correction_bias in float32 beside bf16 weights (transformers
    keeps it in fp32 too, _keep_in_fp32_modules_strict); save_pretrained after .to(bf16) wrote it in bf16."""
    tensors = load_file(path)
    if any(k.endswith("e_score_correction_bias") for k in tensors):
        save_file({k: v.float() if k.endswith("e_score_correction_bias") else v for k, v in tensors.items()}, path,
                  metadata={"format": "pt"})


def build(seed, spec, out):
    cfg_cls = getattr(transformers, spec["cls"])
    config = cfg_cls(**spec["config"])
    model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    randomize(model, seed, spec)
    model.to(torch.bfloat16).save_pretrained(out, safe_serialization=True)
    fp32_selection_bias(out / "model.safetensors")
    path = out / "config.json"
    path.write_text(json.dumps(spec["spelling"](json.loads(path.read_text()), spec.get("hub_extra"), spec.get("hub_drop", ())), indent=2) + "\n")
    (out / "generation_config.json").unlink(missing_ok=True)
    spec["tokenizer"](out)
    for f in out.iterdir():
        f.chmod(0o644)
    # The reference: transformers reading the saved checkpoint (as written, bf16) back in float32.
    return transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()


class RoutingGaps:
    """Hooks every router and keeps the smallest gap between the k-th and (k+1)-th expert score it selected on."""

    def __init__(self, model):
        self.gap = float("inf")
        self.handles = []
        for _, m in model.named_modules():
            if m.__class__.__name__.endswith(("TopkRouter", "TopKRouter")):
                self.handles.append(m.register_forward_hook(self.hook))

    def hook(self, module, inputs, output):
        logits = output[0].float()
        k = module.top_k
        noaux = hasattr(module, "e_score_correction_bias")
        # What the router orders experts by: sigmoid + bias for noaux_tc, else the logits (softmax keeps the order).
        scores = logits.sigmoid() + module.e_score_correction_bias.float() if noaux else logits
        groups = getattr(module, "num_group", None) or 1
        if groups > 1 and module.topk_group < groups:  # the group choice is a selection too
            per_group = scores.view(scores.shape[0], groups, -1)
            group_score = (per_group.topk(2, dim=-1).values.sum(-1) if noaux
                           else logits.softmax(-1).view_as(per_group).max(-1).values)
            self.take(group_score, module.topk_group)
            keep = torch.zeros_like(group_score, dtype=torch.bool)
            keep.scatter_(1, group_score.topk(module.topk_group, dim=-1).indices, True)
            scores = per_group.masked_fill(~keep[..., None], float("-inf")).view_as(scores)
        self.take(scores, k)

    def take(self, scores, k):
        top = torch.topk(scores, k + 1, dim=-1).values
        self.gap = min(self.gap, float((top[:, k - 1] - top[:, k]).min()))

    def close(self):
        for h in self.handles:
            h.remove()


def reference(model, ids):
    gaps = RoutingGaps(model)
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0, -1].float()
    gaps.close()
    with torch.no_grad():
        greedy, seq = [], list(ids)
        for _ in range(GREEDY):
            row = model(torch.tensor([seq])).logits[0, -1].float()
            top2 = torch.topk(row, 2)
            greedy.append({"token": int(top2.indices[0]), "margin": float(top2.values[0] - top2.values[1])})
            seq.append(int(top2.indices[0]))
    return logits, greedy, gaps.gap


AWKWARD_TEXTS = [
    "Hello, world! 123 + 456 = 579.", "digits 1234567890 12 1,000,000.50 3.14159 -42 1e10 ２０２４",
    "数字 12345678 和 東京タワー, code: x=42;\n\treturn [a, b]", "日本語のテキストと中文混合 text 한국어",
    "  leading and   inner   spaces\tand\ttabs\n\nnew lines\r\n", "emoji 🙂👍🏽 family 👨‍👩‍👧 and  🚀",
    "it's DON'T .com ...!!! ?!  (x) [y] {z} <a href=\"b\">", "Ünïcödé façade naïve — “quotes” ‘single’ …",
    "non\u00a0breaking\u00a0 space, e\u0301 combining", " ", "\n", "a" * 40,
]


def check_tokenizer(tok, out):
    """transformers' tokenizer for the saved directory must agree with the tokenizers library on tokenizer.json."""
    from tokenizers import Tokenizer
    raw = Tokenizer.from_file(str(out / "tokenizer.json"))
    for text in AWKWARD_TEXTS + STANDARD_PROMPTS:
        if tok(text)["input_ids"] != raw.encode(text).ids:
            raise SystemExit(f"{out.name}: transformers ({type(tok).__name__}) and tokenizers disagree on {text!r}")


class FragileRouting(Exception):
    pass


def make(name, spec):
    """Builds the fixture; a seed whose routing comes within MIN_ROUTING_GAP of a tie on some prompt is replaced."""
    out = FIXTURES / name
    for attempt in range(10):
        try:
            return make_once(name, spec, out, zlib.crc32(name.encode()) + attempt)
        except FragileRouting as e:
            print(f"  {name}: seed attempt {attempt}: {e}; trying the next seed")
    raise SystemExit(f"{name}: no seed with robust routing in 10 attempts")


def make_once(name, spec, out, seed):
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    model = build(seed, spec, out)
    tok = transformers.AutoTokenizer.from_pretrained(out)
    check_tokenizer(tok, out)
    cases = []
    for prompt in spec["prompts"](tok):
        ids = tok(prompt)["input_ids"]
        logits, greedy, gap = reference(model, ids)
        if gap < MIN_ROUTING_GAP:
            raise FragileRouting(f"routing gap {gap:.2e} on {prompt[:40]!r}")
        logprobs = torch.log_softmax(logits, -1)
        top5 = torch.topk(logprobs, 5)
        tokens = [g["token"] for g in greedy]
        cases.append({
            "prompt": prompt, "input_ids": ids,
            "last_logits": [round(float(v), 6) for v in logits],
            "top5_logprobs": [[int(i), round(float(v), 6)] for v, i in zip(top5.values, top5.indices)],
            "greedy": greedy, "greedy_text": tok.decode(tokens), "min_routing_gap": gap,
        })
        print(f"  {name}: {len(ids):5d} prompt tokens, min greedy margin {min(g['margin'] for g in greedy):.2e}, "
              f"routing gap {gap:.2e}")
    golden = {"model": name, "family": model.config.model_type, "dtype_of_weights": "bfloat16",
              "reference": f"transformers {transformers.__version__}, torch {torch.__version__}, float32 on CPU",
              "seed": seed, "cases": cases}
    (out / "golden.json").write_text(json.dumps(golden, ensure_ascii=False) + "\n")
    return out


def tensor_names(out):
    with safe_open(out / "model.safetensors", "pt") as f:
        return {k: (f.get_slice(k).get_dtype(), f.get_slice(k).get_shape()) for k in f.keys()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help=f"fixtures to write (default: all of {', '.join(SPECS)})")
    ap.add_argument("--list-tensors", action="store_true", help="print each fixture's tensor names, dtypes, shapes")
    args = ap.parse_args()
    torch.set_num_threads(2)
    for name in args.names or SPECS:
        out = make(name, SPECS[name])
        size = sum(f.stat().st_size for f in out.iterdir())
        print(f"{name}: {size / 1e6:.2f} MB")
        if args.list_tensors:
            for k, (dtype, shape) in sorted(tensor_names(out).items()):
                print(f"    {k:60s} {dtype:5s} {shape}")


if __name__ == "__main__":
    main()
