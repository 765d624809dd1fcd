#!/usr/bin/env python3
"""Generates cases.json: extra expected encodings/decodings for the tokenizer unit tests.

Run from the repository root in tools/parity's venv (tools/parity/requirements.txt pins tokenizers and sentencepiece):
    tools/parity/.venv/bin/python tests/unit/tokenizer/data/make_cases.py
Expected values come from HF `tokenizers` (what transformers' tokenizer(text) / decode(ids) use)
and, for SentencePiece models, from the `sentencepiece` package itself.
"""
import json
import os
import random

import sentencepiece as spm
from tokenizers import Regex, Tokenizer, pre_tokenizers

MODEL_DIRS = [
    "models/fortune-moe",
    "tests/fixtures/tiny-mixtral",
    "tests/fixtures/tiny-qwen2-moe",
    "tests/fixtures/tiny-qwen3-moe",
    "tests/fixtures/tiny-olmoe",
    "tests/fixtures/tiny-deepseek-v3",
]

TEXTS = [
    "I'm sure they'll say we've done what he'd want; it's DON'T and I'M.",
    "Numbers: 12345 and 1,000.50 or 3.14159, 2024-01-31!",
    "multiple   spaces    before words",
    "line one\nline two\n\n\nline five\n",
    "tab\tseparated\t\tvalues \t mixed",
    "Ünïcödé façade naïve Ærøskøbing Straße",
    "emoji 🙂🚀 👍🏽 family 👨‍👩‍👧 end",
    "non\u00a0breaking\u00a0 space and em\u2003space",
    "日本語のテキストと中文混合 text",
    "   leading and trailing   ",
    "x  \n  y\r\nz",
    "€100 costs £85 — “quoted” ‘single’…",
    " ",
    "\n",
    "a",
    "Привет, мир! Γειά σου κόσμε. مرحبا",
    "Hello <s> world</s> and <unk> too",
    "<s>Start with a special",
    "chat <|im_start|>user\nhi<|im_end|><|endoftext|>",
    "digits 1234567890 12 1,000,000.50 3.14159 -42 1e10 ２０２４ ٣٤٥ Ⅻ ½",
    "数字 12345678 和 東京タワー, code: x=42;\n\treturn [a, b]",
    "CJK 漢字かなカナ混在ですー、半角ｶﾅ and 中文標點。！",
    "punct: .com ,x !? ... ;; (a)[b]{c} <tag> 'q' \"dq\" #1 @me $5 %p ^ & * _x_ ~/ `c` \\n |",
    "spaces   \n   \n\n \t \r\n end  ",
    "emoji 🙂👍🏽 👨‍👩‍👧 🇯🇵 ❤️ and 🚀🚀",
    "<｜begin▁of▁sentence｜>special inside<｜end▁of▁sentence｜> text",
]


DEEPSEEK_TOKENIZER = "tests/fixtures/tiny-deepseek-v3/tokenizer.json"
QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")

# tokenizer.json "pre_tokenizer" objects and the same pre-tokenizer in the Python package.
PRE_TOKENIZERS = {
    "gpt2_byte_level": ({"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
                        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)),
    "qwen2_split": ({"type": "Sequence", "pretokenizers": [
                        {"type": "Split", "pattern": {"Regex": QWEN2_PATTERN}, "behavior": "Isolated", "invert": False},
                        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]},
                    pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(QWEN2_PATTERN), "isolated"),
                                             pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])),
    "metaspace_first": ({"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": True},
                        pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first", split=True)),
    # DeepSeek-V3's Sequence of three Split regexes + ByteLevel(use_regex=false), as the fixture's tokenizer.json has it.
    "deepseek_v3_split": (json.load(open(DEEPSEEK_TOKENIZER, encoding="utf-8"))["pre_tokenizer"],
                          Tokenizer.from_file(DEEPSEEK_TOKENIZER).pre_tokenizer),
}

PRE_TEXTS = TEXTS + [
    "you're  we'RE 'tis x'Y", "a1b22c333 4444", "  \n\n  word", "end with spaces   ", "\t\tx\ty \t",
    "a\u00a0\u00a0b", "\u3000全角\u3000スペース", "dots... and !!! ?!", "x\r\n\r\ny", "🙂🙂 🙂",
]


# Pools for random texts that mix what DeepSeek's Split regexes tell apart: digit runs (ASCII, fullwidth, Arabic-
# Indic), CJK inside and outside [一-龥぀-ゟ゠-ヿ] (〇, 㐀, 𠀀, halfwidth ｶ, Hangul), letters with combining marks,
# ASCII and Unicode punctuation and symbols, emoji with ZWJ / skin tone / flags, and every kind of space and newline.
FUZZ_POOLS = [
    "abcxyzABCXYZ", "0123456789", "０１２３٣٤٥", "漢字東京中文龥一", "〇㐀𠀀", "かなカナー゠ヿ", "ｶﾅﾞ", "한국어",
    "éüßñøÆ", "e\u0301a\u0308", "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", "—“”‘’…。、！？「」", "€£½∑→©",
    "🙂🚀👍🏽👨\u200d👩\u200d👧🇯🇵❤\ufe0f", " ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u3000", "\u2003",
]


def fuzz_texts(count, seed):
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        parts = []
        for _ in range(rng.randrange(1, 14)):
            pool = rng.choice(FUZZ_POOLS)
            parts.append("".join(rng.choice(pool) for _ in range(rng.randrange(1, 6))))
        texts.append("".join(parts))
    return texts


def is_special_free(tok, text):
    return not any(t.content in text for t in tok.get_added_tokens_decoder().values())


def main():
    rng = random.Random(1234)
    out = {}
    for d in MODEL_DIRS:
        tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
        sp_path = os.path.join(d, "tokenizer.model")
        sp = spm.SentencePieceProcessor(model_file=sp_path) if os.path.exists(sp_path) else None
        cases = []
        for text in TEXTS + (fuzz_texts(300, 7) if "deepseek" in d else []):
            case = {"text": text, "ids": tok.encode(text).ids}
            if sp is not None and is_special_free(tok, text):
                case["sp_ids"] = [sp.bos_id()] + sp.encode(text)
            cases.append(case)
        vocab = tok.get_vocab_size(with_added_tokens=True)
        sequences = [[rng.randrange(vocab) for _ in range(rng.randrange(1, 24))] for _ in range(40)]
        byte_id = {b: tok.token_to_id("<0x%02X>" % b) for b in range(256)}
        if byte_id[0xE2] is not None:
            word = tok.token_to_id("▁the") or 300
            bytes_runs = [[0xE2, 0x82, 0xAC], [0xE2, 0x82], [0x41, 0xFF], [0x20], [0xF0, 0x9F, 0x99, 0x82],
                          [0xC3], [0xED, 0xA0, 0x80], [0xE2, 0x82, 0xAC, 0xE2]]
            for run in bytes_runs:
                ids = [byte_id[b] for b in run]
                sequences += [ids, ids + [word], [word] + ids + [word], [word] + ids]
        decodes = [{"ids": s, "text": tok.decode(s, skip_special_tokens=False)} for s in sequences]
        out[d] = {"encode": cases, "decode": decodes}
    pre = {}
    for name, (config, py) in PRE_TOKENIZERS.items():
        texts = PRE_TEXTS + (fuzz_texts(300, 7) if name == "deepseek_v3_split" else [])
        pre[name] = {"config": config,
                     "cases": [{"text": t, "pieces": [p for p, _ in py.pre_tokenize_str(t)]} for t in texts]}
    out["pre_tokenizers"] = pre
    raw = [b"\xe2\x82\xac", b"\xe2\x82", b"A\xffB", b"\xed\xa0\x80x", b"\xf0\x9f\x99", b"\xc0\xaf",
           b"\xf4\x90\x80\x80", b"\xe0\x80\x80", b"ok\xf0\x9f\x99\x82\x82", b"\xf5", b"\xe1\x80\xe1\x80\x80"]
    out["lossy"] = [{"bytes": list(b), "text": b.decode("utf-8", errors="replace")} for b in raw]
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cases.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=None, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
