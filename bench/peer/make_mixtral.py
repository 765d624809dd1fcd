#!/usr/bin/env python3
"""Writes one Mixtral-shape model twice, with the same bf16 weights: as a Hugging Face checkpoint directory
(config.json, model.safetensors, fortune-moe's tokenizer) that moed loads, and as a bf16 GGUF that llama.cpp loads.

  make_mixtral.py --out DIR --gguf-py LLAMA_CPP/gguf-py [--hidden 1024 --ffn 2816 --layers 3 --experts 8 ...]
  make_mixtral.py --out DIR --gguf-py LLAMA_CPP/gguf-py --from-hf models/fortune-moe   (GGUF of an existing
                                                                                       bf16 Mixtral checkpoint)

Defaults: the ~224M shape of issue 18 (hidden 1024, 8 experts of 2816, top-2, GQA 8/2, 3 layers, vocab 4096 —
fortune-moe's tokenizer, so both engines see the same vocabulary). Q and K rows are permuted for the GGUF as
llama.cpp's converter does (its RoPE pairs adjacent dimensions), so both engines compute the same function.
"""
import argparse
import json
import pathlib
import shutil
import struct
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
TOKENIZER_DIR = ROOT / "models" / "fortune-moe"


def bf16(x):
    """float32 array -> bf16 bits (uint16), round to nearest even."""
    b = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    return ((b + 0x7FFF + ((b >> 16) & 1)) >> 16).astype(np.uint16)


def write_safetensors(path, tensors):
    """tensors: name -> uint16 bf16 array."""
    header, offset = {}, 0
    for name, t in tensors.items():
        header[name] = {"dtype": "BF16", "shape": list(t.shape), "data_offsets": [offset, offset + t.nbytes]}
        offset += t.nbytes
    blob = json.dumps(header).encode()
    blob += b" " * ((8 - len(blob) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for t in tensors.values():
            f.write(t.tobytes())


def read_safetensors(directory):
    """name -> uint16 bf16 array, from model.safetensors or the shards model.safetensors.index.json names."""
    index = directory / "model.safetensors.index.json"
    files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.exists() else [
        "model.safetensors"]
    out = {}
    for name in files:
        raw = (directory / name).read_bytes()
        n = struct.unpack("<Q", raw[:8])[0]
        header = json.loads(raw[8:8 + n])
        for key, meta in header.items():
            if key == "__metadata__":
                continue
            if meta["dtype"] != "BF16":
                raise SystemExit(f"{name}: {key} is {meta['dtype']}, only BF16 checkpoints are converted")
            b, e = meta["data_offsets"]
            out[key] = np.frombuffer(raw[8 + n + b:8 + n + e], dtype=np.uint16).reshape(meta["shape"])
    return out


def permute_rows(w, n_head):
    """llama.cpp's convert_hf_to_gguf permute for Q/K: rotate_half pairs -> interleaved pairs."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_gguf(gguf, a, vocab, hf, layers, final_norm, path):
    """A bf16 llama-architecture GGUF with stacked experts, from HF-named bf16 tensors."""
    H, F, E, V, hd = a.hidden, a.ffn, a.experts, len(vocab), a.hidden // a.heads
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("moed-peer-mixtral")
    w.add_context_length(4096)
    w.add_embedding_length(H)
    w.add_block_count(a.layers)
    w.add_feed_forward_length(F)
    w.add_head_count(a.heads)
    w.add_head_count_kv(a.kv_heads)
    w.add_rope_dimension_count(hd)
    w.add_rope_freq_base(1e6)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_expert_count(E)
    w.add_expert_used_count(a.top_k)
    w.add_vocab_size(V)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_BF16)
    tokens, scores, types = [], [], []
    for piece, i in vocab:
        tokens.append(piece)
        scores.append(-float(i))
        if i == 0:
            types.append(gguf.TokenType.UNKNOWN)
        elif piece in ("<s>", "</s>"):
            types.append(gguf.TokenType.CONTROL)
        elif piece.startswith("<0x") and len(piece) == 6:
            types.append(gguf.TokenType.BYTE)
        else:
            types.append(gguf.TokenType.NORMAL)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    BF16 = gguf.GGMLQuantizationType.BF16
    f32 = lambda t: (t.astype(np.uint32) << 16).view(np.float32)  # norms as F32, as llama.cpp's converter writes them
    w.add_tensor("token_embd.weight", hf["model.embed_tokens.weight"], raw_dtype=BF16)
    w.add_tensor("output_norm.weight", f32(final_norm))
    w.add_tensor("output.weight", hf["lm_head.weight"], raw_dtype=BF16)
    for l, L in enumerate(layers):
        b = f"blk.{l}."
        w.add_tensor(b + "attn_norm.weight", f32(L["attn_norm"]))
        w.add_tensor(b + "ffn_norm.weight", f32(L["ffn_norm"]))
        w.add_tensor(b + "attn_q.weight", permute_rows(L["q"], a.heads), raw_dtype=BF16)
        w.add_tensor(b + "attn_k.weight", permute_rows(L["k"], a.kv_heads), raw_dtype=BF16)
        w.add_tensor(b + "attn_v.weight", L["v"], raw_dtype=BF16)
        w.add_tensor(b + "attn_output.weight", L["o"], raw_dtype=BF16)
        w.add_tensor(b + "ffn_gate_inp.weight", L["router"], raw_dtype=BF16)
        w.add_tensor(b + "ffn_gate_exps.weight", np.stack(L["w1"]), raw_dtype=BF16)
        w.add_tensor(b + "ffn_up_exps.weight", np.stack(L["w3"]), raw_dtype=BF16)
        w.add_tensor(b + "ffn_down_exps.weight", np.stack(L["w2"]), raw_dtype=BF16)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=pathlib.Path)
    ap.add_argument("--gguf-py", required=True, type=pathlib.Path, help="llama.cpp's gguf-py directory")
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--ffn", type=int, default=2816)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--experts", type=int, default=8)
    ap.add_argument("--top-k", type=int, default=2)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--from-hf", type=pathlib.Path, help="convert this bf16 Mixtral checkpoint instead")
    a = ap.parse_args()
    if a.from_hf:
        cfg = json.loads((a.from_hf / "config.json").read_text())
        a.hidden, a.ffn, a.layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
        a.experts, a.top_k = cfg["num_local_experts"], cfg["num_experts_per_tok"]
        a.heads, a.kv_heads = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    sys.path.insert(0, str(a.gguf_py))
    import gguf  # noqa: E402 (llama.cpp's own writer)

    vocab_json = json.loads((TOKENIZER_DIR / "tokenizer.json").read_text())
    vocab = sorted(vocab_json["model"]["vocab"].items(), key=lambda kv: kv[1])
    V, H, F, E, hd = len(vocab), a.hidden, a.ffn, a.experts, a.hidden // a.heads
    rng = np.random.default_rng(a.seed)

    def rand(*shape, scale):
        return bf16(rng.uniform(-scale, scale, size=shape).astype(np.float32))

    ones = bf16(np.ones(H, np.float32))
    a.out.mkdir(parents=True, exist_ok=True)
    if a.from_hf:
        hf = read_safetensors(a.from_hf)
        layers = []
        for l in range(a.layers):
            p = f"model.layers.{l}."
            m = p + "block_sparse_moe."
            layers.append({"q": hf[p + "self_attn.q_proj.weight"], "k": hf[p + "self_attn.k_proj.weight"],
                           "v": hf[p + "self_attn.v_proj.weight"], "o": hf[p + "self_attn.o_proj.weight"],
                           "router": hf[m + "gate.weight"],
                           **{w: [hf[m + f"experts.{e}.{w}.weight"] for e in range(E)] for w in ("w1", "w2", "w3")},
                           "attn_norm": hf[p + "input_layernorm.weight"],
                           "ffn_norm": hf[p + "post_attention_layernorm.weight"]})
        write_gguf(gguf, a, vocab, hf, layers, hf["model.norm.weight"], a.out / "model-bf16.gguf")
        print(json.dumps({"gguf": str(a.out / "model-bf16.gguf"), "parameters": sum(t.size for t in hf.values())}))
        return
    hf = {"model.embed_tokens.weight": rand(V, H, scale=1.0), "model.norm.weight": ones,
          "lm_head.weight": rand(V, H, scale=np.sqrt(3 / H))}
    layers = []
    for l in range(a.layers):
        p = f"model.layers.{l}."
        L = {"q": rand(a.heads * hd, H, scale=np.sqrt(3 / H)), "k": rand(a.kv_heads * hd, H, scale=np.sqrt(3 / H)),
             "v": rand(a.kv_heads * hd, H, scale=np.sqrt(3 / H)), "o": rand(H, a.heads * hd, scale=np.sqrt(3 / H)),
             "router": rand(E, H, scale=np.sqrt(3 / H)),
             "w1": [rand(F, H, scale=np.sqrt(3 / H)) for _ in range(E)],
             "w3": [rand(F, H, scale=np.sqrt(3 / H)) for _ in range(E)],
             "w2": [rand(H, F, scale=np.sqrt(3 / F)) for _ in range(E)]}
        L["attn_norm"] = L["ffn_norm"] = ones
        layers.append(L)
        hf[p + "input_layernorm.weight"] = ones
        hf[p + "post_attention_layernorm.weight"] = ones
        for n, key in (("q", "q_proj"), ("k", "k_proj"), ("v", "v_proj"), ("o", "o_proj")):
            hf[p + f"self_attn.{key}.weight"] = L[n]
        hf[p + "block_sparse_moe.gate.weight"] = L["router"]
        for e in range(E):
            for w in ("w1", "w2", "w3"):
                hf[p + f"block_sparse_moe.experts.{e}.{w}.weight"] = L[w][e]

    a.out.mkdir(parents=True, exist_ok=True)
    hf_dir = a.out / "hf"
    hf_dir.mkdir(exist_ok=True)
    write_safetensors(hf_dir / "model.safetensors", hf)
    config = {"architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "vocab_size": V, "hidden_size": H,
              "intermediate_size": F, "num_hidden_layers": a.layers, "num_attention_heads": a.heads,
              "num_key_value_heads": a.kv_heads, "head_dim": hd, "num_local_experts": E,
              "num_experts_per_tok": a.top_k, "rms_norm_eps": 1e-5, "rope_theta": 1e6,
              "max_position_embeddings": 4096, "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 2,
              "hidden_act": "silu", "torch_dtype": "bfloat16"}
    (hf_dir / "config.json").write_text(json.dumps(config, indent=2))
    for name in ("tokenizer.model", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(TOKENIZER_DIR / name, hf_dir / name)

    write_gguf(gguf, a, vocab, hf, layers, hf["model.norm.weight"], a.out / "model-bf16.gguf")
    params = sum(t.size for t in hf.values())
    print(json.dumps({"hf_dir": str(hf_dir), "gguf": str(a.out / "model-bf16.gguf"), "parameters": params}))


if __name__ == "__main__":
    main()
