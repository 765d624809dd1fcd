"""A tiny DeepSeek-V3-style tokenizer.json: byte-level BPE behind DeepSeek's Split pre-tokenizer sequence.

The pre-tokenizer, special tokens, post-processor and tokenizer_config.json follow DeepSeek-V3's published files
(three Split regexes, then ByteLevel without its own regex; BOS <｜begin▁of▁sentence｜> = 0 prepended, EOS
<｜end▁of▁sentence｜> = 1; tokenizer_class LlamaTokenizerFast). The merges are trained here, with a coarser
pre-tokenizer (split at spaces only), so that merges cross the boundaries DeepSeek's regexes draw (digit runs
longer than 3, CJK next to Latin, punctuation before letters): a tokenizer that splits differently gets other ids.
"""
import json
import pathlib

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

BOS, EOS, PAD = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜▁pad▁｜>"
VOCAB = 1024

# DeepSeek-V3's pre_tokenizer, as its tokenizer.json spells it.
PRE_TOKENIZER = {
    "type": "Sequence",
    "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": "\\p{N}{1,3}"}, "behavior": "Isolated", "invert": False},
        {"type": "Split", "pattern": {"Regex": "[一-龥぀-ゟ゠-ヿ]+"}, "behavior": "Isolated", "invert": False},
        {"type": "Split", "pattern": {"Regex": "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|"
                                               "[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|"
                                               "\\s*[\r\n]+|\\s+(?!\\S)|\\s+"},
         "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
    ],
}

CORPUS = """\
The gating network decides which experts see each token. Mixture of Experts models scale parameters without
scaling the compute per token: only the top-k experts run. A shared expert sees every token; the routed experts see
the tokens the router sends them. Load balancing keeps experts busy, and capacity limits drop the overflow.
Hello, world! 123 + 456 = 579. In 2024, 1,000,000 tokens cost $0.27; 3.14159265 is pi; 10000000000 is ten billion.
Phone: +1-555-0100, ids 12345678901234567890, year 1999/2000, version v3.2.1, port :8080, ratio 16:9.
def route(x):\n    scores = softmax(x @ W)\n    return topk(scores, k=8)  # eight experts\n\tif (a<b && c>=d) {return [1, 2, 3];}
深度求索的模型使用混合专家结构。东京和北京都是大城市。我们今天学习了一百二十三个汉字。数字和文字混合：第3章，共12页。
日本語のテキストとカタカナ、ひらがな。東京タワーは三百三十三メートルです。コンピューターとプログラム。
한국어 문장도 있습니다. Привет, мир! Γειά σου κόσμε. Ünïcödé façade naïve Straße — “quotes” and ‘single’ …
emoji 🙂🚀👍🏽 and tabs\tstay intact; newlines\n\nand\r\nwindows line ends. URLs: https://example.com/a?b=c&d=e#f
MiXeD CaSe wOrDs and ALLCAPS, it's, we'll, they've, I'm, don't. "Quoted," she said; (parenthesised) [bracketed] {braced}
"""


def build():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(" "), "merged_with_next"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, min_frequency=1, special_tokens=[BOS, EOS, PAD],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([CORPUS] * 3, trainer=trainer)
    spec = json.loads(tok.to_str())
    spec["normalizer"] = {"type": "Sequence", "normalizers": []}
    spec["pre_tokenizer"] = PRE_TOKENIZER
    spec["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": BOS, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"SpecialToken": {"id": BOS, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                 {"SpecialToken": {"id": BOS, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {BOS: {"id": BOS, "ids": [0], "tokens": [BOS]}},
    }
    spec["decoder"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
    return spec


TOKENIZER_CONFIG = {
    "add_bos_token": True,
    "add_eos_token": False,
    "bos_token": {"__type": "AddedToken", "content": BOS, "lstrip": False, "normalized": True, "rstrip": False,
                  "single_word": False},
    "clean_up_tokenization_spaces": False,
    "eos_token": {"__type": "AddedToken", "content": EOS, "lstrip": False, "normalized": True, "rstrip": False,
                  "single_word": False},
    "legacy": True,
    "model_max_length": 2048,
    "pad_token": {"__type": "AddedToken", "content": EOS, "lstrip": False, "normalized": True, "rstrip": False,
                  "single_word": False},
    "sp_model_kwargs": {},
    "unk_token": None,
    "tokenizer_class": "LlamaTokenizerFast",
}

_BUILT = None


def write(out: pathlib.Path):
    """Writes tokenizer.json and tokenizer_config.json into `out` (built once per run)."""
    global _BUILT
    if _BUILT is None:
        _BUILT = build()
    (out / "tokenizer.json").write_text(json.dumps(_BUILT, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    (out / "tokenizer_config.json").write_text(json.dumps(TOKENIZER_CONFIG, ensure_ascii=False, indent=2) + "\n",
                                               encoding="utf-8")
