"""Renders tests/fixtures/chat_templates/*.jinja with transformers' own chat-template machinery and stores the results
as goldens (tests/fixtures/chat_templates/goldens/<name>.json) for the C++ interpreter's byte-for-byte test.

Rendering goes through transformers.utils.chat_template_utils.render_jinja_template, the function
PreTrainedTokenizerBase.apply_chat_template(tokenize=False) calls with {**special_tokens_map, **kwargs}; bos/eos are
passed the same way (omitted when the model has none, so the template sees them undefined). A case whose template
raises records the error message instead of a rendering.

    tools/parity/.venv/bin/python tools/parity/make_chat_goldens.py
"""
import json
import pathlib

import jinja2
import transformers
from transformers.utils.chat_template_utils import render_jinja_template

ROOT = pathlib.Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "tests" / "fixtures" / "chat_templates"
OUT = TEMPLATES / "goldens"

DS_BOS, DS_EOS = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"
# template file stem -> (bos_token, eos_token) of the model family it comes from (None: the tokenizer has none).
TOKENS = {
    "mixtral-8x7b-instruct-v0.1": ("<s>", "</s>"),
    "mixtral-8x7b-instruct-v0.1-2023": ("<s>", "</s>"),
    "qwen2-57b-a14b-instruct": (None, "<|im_end|>"),
    "qwen3": (None, "<|im_end|>"),
    "olmoe-1b-7b-0924-instruct": ("<|endoftext|>", "<|endoftext|>"),
    "deepseek-v2-chat": (DS_BOS, DS_EOS),
    "deepseek-r1": (DS_BOS, DS_EOS),
    "deepseek-v3.1": (DS_BOS, DS_EOS),
}

SYS = {"role": "system", "content": "You are a terse assistant.\nAnswer in one line."}
U1 = {"role": "user", "content": "Hello!"}
A1 = {"role": "assistant", "content": "Hi. How can I help?"}
U2 = {"role": "user", "content": "Write a haiku about\nmixture-of-experts routing:\n  - 8 experts\n  - top-2"}
A2 = {"role": "assistant", "content": "Tokens seek experts,\ngates weigh two of eight paths —\nsparse minds, dense answers."}
U3 = {"role": "user", "content": "Ünïcödé: 日本語のテキスト, emoji 🚀🧪, Ελληνικά, \"quotes\" and 'apostrophes' \\ backslash\ttab"}
A3 = {"role": "assistant", "content": "  leading and trailing spaces  "}
U_EMPTY = {"role": "user", "content": ""}
U_JINJA = {"role": "user", "content": "{{ not a template }} {% if %} {# nor this #}"}
U_WS = {"role": "user", "content": "\n\n  indented\n\n"}

TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Current weather for a city.",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string", "description": "City name, e.g. Zürich"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
            "required": ["city"]}}},
    {"type": "function", "function": {
        "name": "add", "description": "Adds two numbers.",
        "parameters": {"type": "object", "properties": {
            "a": {"type": "number"}, "b": {"type": "integer", "default": 0}}, "required": ["a"]}}},
]
CALL_WEATHER = {"id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\", \"unit\": \"celsius\"}"}}
CALL_ADD = {"id": "call_2", "type": "function", "function": {"name": "add", "arguments": "{\"a\": 1.5, \"b\": 2}"}}
CALL_ADD_DICT = {"id": "call_3", "type": "function",
                 "function": {"name": "add", "arguments": {"a": 0.1, "b": -3, "note": "dict args, ünïcode"}}}


def base_cases():
    """Conversations every template is rendered on: (name, messages, add_generation_prompt, extra kwargs)."""
    convs = [
        ("single_user", [U1]),
        ("system_user", [SYS, U1]),
        ("two_turns", [U1, A1, U2]),
        ("system_two_turns", [SYS, U1, A1, U2]),
        ("three_full_turns", [U1, A1, U2, A2, U3, A3]),
        ("system_three_full_turns", [SYS, U1, A1, U2, A2, U3, A3]),
        ("unicode_multiline", [SYS, U3]),
        ("empty_user", [U_EMPTY]),
        ("jinja_looking_content", [U_JINJA, A1, U_WS]),
        ("whitespace_content", [U_WS, A3, U1]),
        ("ends_with_assistant", [U1, A1]),
    ]
    for name, msgs in convs:
        for gen in (False, True):
            yield f"{name}_gen{int(gen)}", msgs, gen, {}


def specific_cases(stem):
    """Template-specific features: thinking, reasoning content, tools, errors."""
    think_a = {"role": "assistant", "content": "<think>\nFirst, greet.\n</think>\n\nHello there."}
    reason_a = {"role": "assistant", "content": "The answer is 4.", "reasoning_content": "2 + 2 = 4, easy."}
    tool_a = {"role": "assistant", "content": "", "tool_calls": [CALL_WEATHER]}
    tool_a2 = {"role": "assistant", "content": "Let me compute both.", "tool_calls": [CALL_WEATHER, CALL_ADD_DICT]}
    tool_r = {"role": "tool", "content": "{\"temp\": 21, \"sky\": \"clear\"}"}
    tool_r2 = {"role": "tool", "content": "-1.4"}
    q = {"role": "user", "content": "Weather in Paris, and 0.1 + -3?"}
    if stem.startswith("mixtral"):
        yield "err_not_alternating", [U1, U2], True, {}
        yield "err_assistant_first", [A1, U1], False, {}
        yield "err_tool_role", [U1, A1, tool_r], False, {}
    if stem == "mixtral-8x7b-instruct-v0.1":
        yield "err_system_then_assistant", [SYS, A1], False, {}
    if stem == "mixtral-8x7b-instruct-v0.1-2023":
        yield "err_system_role", [SYS, U1], False, {}
    if stem == "qwen3":
        for gen in (False, True):
            yield f"thinking_off_gen{int(gen)}", [U1, A1, U2], gen, {"enable_thinking": False}
            yield f"thinking_on_gen{int(gen)}", [U1, A1, U2], gen, {"enable_thinking": True}
        yield "think_in_content_last", [U1, think_a], False, {}
        yield "think_in_content_history", [U1, think_a, U2], True, {}
        yield "reasoning_content_last", [SYS, U2, reason_a], False, {}
        yield "reasoning_content_history", [U2, reason_a, U1], True, {"enable_thinking": False}
        yield "tools_no_system", [q], True, {"tools": TOOLS}
        yield "tools_with_system", [SYS, q], True, {"tools": TOOLS}
        yield "tool_call_roundtrip", [SYS, q, tool_a, tool_r, tool_r2], True, {"tools": TOOLS}
        yield "tool_calls_content_dict_args", [q, tool_a2, tool_r, tool_r2, A2], False, {"tools": TOOLS}
        yield "tool_response_in_user", [{"role": "user", "content": "<tool_response>\nok\n</tool_response>"}, A1, U1],\
            True, {}
        yield "system_not_first", [U1, SYS, U2], True, {}
    if stem in ("deepseek-r1", "deepseek-v3.1"):
        ds_call = {"role": "assistant", "content": None, "tool_calls": [CALL_WEATHER]}
        ds_call2 = {"role": "assistant", "content": "Calling.", "tool_calls": [CALL_WEATHER, CALL_ADD]}
        yield "two_systems", [SYS, {"role": "system", "content": "Second system."}, U1], True, {}
        yield "think_stripped_history", [U1, think_a, U2], True, {}
        yield "tool_call_none_content", [SYS, q, ds_call, tool_r], True, {}
        yield "tool_calls_two_then_answer", [q, ds_call2, tool_r, tool_r2, A1, U1], True, {}
    if stem == "deepseek-v3.1":
        for gen in (False, True):
            yield f"thinking_on_gen{int(gen)}", [SYS, U1, A1, U2], gen, {"thinking": True}
        yield "prefix_thinking", [U1, {"role": "assistant", "content": "Partial", "prefix": True}], False,\
            {"thinking": True}
    if stem == "deepseek-v2-chat":
        yield "tool_role_ignored", [U1, {"role": "tool", "content": "x"}, A1], True, {}
    if stem == "olmoe-1b-7b-0924-instruct":
        yield "no_bos_token", [SYS, U1], True, {"__no_bos__": True}


# Small templates exercising Jinja features one at a time, rendered in transformers' Jinja environment:
# (name, template, variables). `messages` defaults to [].
FEATURES = [
    ("ws_dash_both", "a  {{- ' b ' -}}  c\n  {%- if true -%}  d  {%- endif -%}  e", {}),
    ("ws_trim_blocks", "{% if true %}\nx\n{% endif %}\ny\n", {}),
    ("ws_lstrip_blocks", "line\n    {% if true %}\n    in\n    {% endif %}\nend", {}),
    ("ws_lstrip_plus", "a\n    {%+ if true %}b{% endif %}\n", {}),
    ("ws_lstrip_not_after_text", "a {% if true %}b{% endif %}", {}),
    ("ws_var_not_lstripped", "a\n    {{ 'v' }}\n", {}),
    ("ws_comments", "a\n  {# note #}\nb {#- c -#}   d\n{# x #}e", {}),
    ("ws_trailing_newline_dropped", "x\n", {}),
    ("crlf_normalized", "a\r\nb\rc", {}),
    ("for_else_and_loop", "{% for x in xs %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.revindex }}/{{ loop.length }}"
     "{{ 'F' if loop.first }}{{ 'L' if loop.last }}{{ loop.cycle('a', 'b') }} {% else %}empty{% endfor %}"
     "{% for x in [] %}x{% else %}none{% endfor %}", {"xs": [3, 4, 5]}),
    ("for_prev_next", "{% for x in xs %}[{{ loop.previtem }}|{{ x }}|{{ loop.nextitem }}]{% endfor %}", {"xs": [1, 2, 3]}),
    ("for_filter", "{% for x in xs if x is odd %}{{ x }}:{{ loop.index }}:{{ loop.length }} {% endfor %}",
     {"xs": [1, 2, 3, 4, 5]}),
    ("for_tuple_unpack", "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{% for k, v in d|items %}{{ k }}{% endfor %}",
     {"d": {"b": 1, "a": [1, 2]}}),
    ("for_dict_and_string", "{% for k in d %}{{ k }}{% endfor %}|{% for c in 'héllo' %}{{ c }}.{% endfor %}",
     {"d": {"z": 1, "y": 2}}),
    ("break_continue", "{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x > 4 %}{% break %}"
     "{% endif %}{{ x }}{% endfor %}", {}),
    ("nested_loops", "{% for a in xs %}{% for b in xs %}{{ loop.index }}{{ a }}{{ b }},{% endfor %}{{ loop.index }};"
     "{% endfor %}", {"xs": ["p", "q"]}),
    ("set_scoping", "{% set x = 1 %}{% for i in [1, 2] %}{% set x = x + i %}{{ x }}{% endfor %}{{ x }}"
     "{% if true %}{% set x = 9 %}{% endif %}{{ x }}", {}),
    ("namespace", "{% set ns = namespace(n=0, s='') %}{% for i in range(4) %}{% set ns.n = ns.n + i %}"
     "{% set ns.s = ns.s ~ i %}{% endfor %}{{ ns.n }} {{ ns.s }}", {}),
    ("set_block_and_tuple", "{% set a, b = [1, 'two'] %}{% set blk %}[{{ a }}{{ b }}]{% endset %}{{ blk }}{{ blk|length }}", {}),
    ("macro", "{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('A') }} "
     "{{ greet('B', '?') }} {{ greet(name='C', punct='.') }}", {}),
    ("macro_recursive_type", "{%- macro t(spec) -%}{%- if spec.type == 'array' -%}list[{{ t(spec['items']) }}]"
     "{%- elif spec.type is string -%}{{ spec.type }}{%- else -%}Union[{% for x in spec.type %}{{ x }}"
     "{% if not loop.last %},{% endif %}{% endfor %}]{%- endif -%}{%- endmacro -%}"
     "{{ t({'type': 'array', 'items': {'type': ['int', 'str']}}) }}", {}),
    ("filters_text", "{{ '  pad  '|trim }}|{{ 'xxhixx'|trim('x') }}|{{ 'abc'|upper }}|{{ 'ABC'|lower }}|"
     "{{ 'hello wORLD'|title }}|{{ 'hello World'|capitalize }}|{{ 'a-b-c'|replace('-', '+') }}|"
     "{{ 'a-b-c'|replace('-', '', 1) }}|{{ 42|string ~ '!' }}|{{ 'ünï'|length }}|{{ [1, 2]|length }}", {}),
    ("filters_default", "{{ missing|default('dflt') }}|{{ ''|default('e') }}|{{ ''|default('e', true) }}|"
     "{{ none|d('n') }}|{{ x|default(1) }}", {"x": 0}),
    ("filters_lists", "{{ xs|join(', ') }}|{{ xs|first }}|{{ xs|last }}|{{ xs|reverse|list }}|{{ 'abc'|reverse }}|"
     "{{ ds|map(attribute='n')|join }}|{{ ds|selectattr('n', 'equalto', 2)|list }}|"
     "{{ ds|rejectattr('n', 'equalto', 2)|map(attribute='n')|list }}|{{ ds|selectattr('f')|list|length }}|"
     "{{ 'ab'|list }}|{{ ds|join('/', attribute='n') }}", {"xs": [3, 1, 2], "ds": [{"n": 1, "f": True},
                                                                                   {"n": 2, "f": False}, {"n": 3}]}),
    ("filters_numbers", "{{ '7'|int + 1 }}|{{ 'x'|int }}|{{ 3.7|int }}|{{ '2.5'|float }}|{{ -3|abs }}|{{ -2.5|abs }}", {}),
    ("tojson", "{{ d|tojson }}|{{ d|tojson(indent=2) }}|{{ 'ünï \"q\"\n'|tojson }}|{{ [1, 2.5, none, true]|tojson }}"
     "|{{ {}|tojson }}|{{ []|tojson }}|{{ 1e-7|tojson }}|{{ 1e22|tojson }}",
     {"d": {"b": [1, {"c": None}], "a": "x\ty", "e": {}}}),
    ("tests", "{{ x is defined }}{{ y is defined }}{{ y is undefined }}{{ none is none }}{{ 'a' is string }}"
     "{{ d is mapping }}{{ xs is mapping }}{{ xs is iterable }}{{ 'a' is iterable }}{{ 3 is number }}"
     "{{ 3 is integer }}{{ 3.0 is integer }}{{ 3.0 is float }}{{ true is boolean }}{{ 1 is boolean }}"
     "{{ 6 is divisibleby 3 }}{{ 7 is divisibleby(3) }}{{ 2 is even }}{{ x is sameas none }}{{ 'b' is in 'abc' }}"
     "{{ 3 is not string }}{{ true is true }}{{ 0 is false }}{{ x is eq 5 }}{{ 'ab' is lower }}",
     {"x": 5, "d": {}, "xs": [1]}),
    ("slicing", "{{ xs[1:] }}{{ xs[:-1] }}{{ xs[::-1] }}{{ xs[::2] }}{{ xs[-2:] }}{{ xs[5:] }}{{ 'héllo'[1:3] }}"
     "{{ 'héllo'[::-1] }}{{ 'héllo'[-1] }}{{ xs[-1] }}{{ xs.0 }}", {"xs": [1, 2, 3, 4]}),
    ("operators", "{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 7 / 2 }} {{ 4 / 2 }} "
     "{{ 1 + 2.5 }} {{ 'ab' * 3 }} {{ [1] + [2] }} {{ 1 ~ 'x' ~ none }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} "
     "{{ 'a' < 'b' }} {{ 1 == 1.0 }} {{ 'x' in ['x'] }} {{ 'k' in {'k': 1} }} {{ 'z' not in 'abc' }} "
     "{{ not 0 }} {{ 0 or 'y' }} {{ 1 and 'z' }} {{ -(3) }} {{ 10 - 2 - 3 }} {{ 2 + 3 * 4 }}", {}),
    ("python_repr", "{{ d }}|{{ xs }}|{{ none }}|{{ true }}|{{ 1.0 }}|{{ 0.1 + 0.2 }}|{{ 1e-5 }}|{{ 123456789.0 * 1e10 }}"
     "|{{ \"it's\" }}|{{ ['it\\'s', 'a\"b', 'n\\nl'] }}",
     {"d": {"k": [1, "v", None, True, 2.5]}, "xs": []}),
    ("str_methods", "{{ 'a,b,,c'.split(',') }}|{{ '  a  b '.split() }}|{{ 'a b c'.split(' ', 1) }}|{{ 'xyhixy'.strip('xy') }}"
     "|{{ '..a..'.lstrip('.') }}|{{ '..a..'.rstrip('.') }}|{{ 'abc'.startswith('ab') }}|{{ 'abc'.endswith(('x', 'c')) }}"
     "|{{ 'abc'.upper() }}|{{ 'a-b'.replace('-', '_') }}|{{ '-'.join(['a', 'b']) }}|{{ 'hello'.find('l') }}"
     "|{{ 'hello'.count('l') }}|{{ 'Title me'.title() }}", {}),
    ("dict_methods_and_attrs", "{{ d.get('a') }}{{ d.get('zz', 'no') }}{{ d.get('zz') }}{{ d.keys()|list }}{{ d.values()|list }}"
     "{{ d.a }}{{ d['a'] }}{{ d.missing is defined }}{{ d['missing'] is defined }}", {"d": {"a": 1, "b": 2}}),
    ("literals", "{{ 'con' 'cat' }}|{{ '\\x41\\u00e9\\t|' }}|{{ (1, 2) }}|{{ {'a': [1, {'b': none}]} }}|{{ 1_000 }}|{{ 2.50 }}"
     "|{{ True }}{{ False }}{{ None }}|{{ 'x' if false }}|{{ 'y' if false else 'n' }}", {}),
    ("undefined_printing", "[{{ nothing }}][{{ d.nope }}][{{ xs[9] }}][{{ nothing|length }}][{{ nothing is none }}]"
     "[{% for x in nothing %}x{% endfor %}][{{ nothing ~ 'ok' }}][{{ nothing == nothing }}]",
     {"d": {}, "xs": []}),
    ("err_raise", "{% if true %}{{ raise_exception('Custom failure: ' ~ 3) }}{% endif %}", {}),
    ("err_undefined_attr", "{{ nothing.attr }}", {}),
    ("err_undefined_item", "{{ messages[0]['role'] }}", {}),
    ("err_str_plus_int", "{{ 'a' + 1 }}", {}),
    ("err_syntax", "{% if true %}unclosed", {}),
    ("err_unknown_filter", "{{ 1|nosuchfilter }}", {}),
]


def feature_cases():
    cases = []
    for name, template, variables in FEATURES:
        case = {"name": name, "template": template, "vars": variables}
        try:
            rendered, _ = render_jinja_template(conversations=[variables.get("messages", [])], chat_template=template,
                                                **{k: v for k, v in variables.items() if k != "messages"})
            case["expected"] = rendered[0]
        except Exception as e:  # template errors and the Python errors (TypeError...) a render can raise
            case["error"] = str(e)
            case["error_type"] = type(e).__name__
        cases.append(case)
    return cases


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    features = feature_cases()
    (OUT.parent / "features.json").write_text(json.dumps(
        {"generator": "tools/parity/make_chat_goldens.py", "transformers": transformers.__version__,
         "jinja2": jinja2.__version__, "cases": features}, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"features: {len(features)} cases ({sum('error' in c for c in features)} raise)")
    for path in sorted(TEMPLATES.glob("*.jinja")):
        stem = path.stem
        template = path.read_text(encoding="utf-8")
        bos, eos = TOKENS[stem]
        cases = []
        for name, messages, gen, extra in [*base_cases(), *specific_cases(stem)]:
            extra = dict(extra)
            case_bos = None if extra.pop("__no_bos__", False) else bos
            tools = extra.pop("tools", None)
            kwargs = {k: v for k, v in (("bos_token", case_bos), ("eos_token", eos)) if v is not None}
            kwargs.update(extra)
            case = {"name": name, "messages": messages, "add_generation_prompt": gen}
            if case_bos is not None:
                case["bos_token"] = case_bos
            if eos is not None:
                case["eos_token"] = eos
            if tools is not None:
                case["tools"] = tools
            if extra:
                case["extra"] = extra
            try:
                rendered, _ = render_jinja_template(conversations=[messages], tools=tools, chat_template=template,
                                                    add_generation_prompt=gen, **kwargs)
                case["expected"] = rendered[0]
            except jinja2.exceptions.TemplateError as e:
                case["error"] = str(e)
            cases.append(case)
        doc = {"template": path.name, "generator": "tools/parity/make_chat_goldens.py",
               "transformers": transformers.__version__, "jinja2": jinja2.__version__, "cases": cases}
        (OUT / f"{stem}.json").write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        print(f"{stem}: {len(cases)} cases ({sum('error' in c for c in cases)} raise)")


if __name__ == "__main__":
    main()
