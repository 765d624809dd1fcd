"""Expert specialization (issue 16): GetExpertProfile on a fresh daemon counts exactly the tokens each expert
received, `moectl experts` prints the heatmap and top tokens, and `moectl experts --html` renders in Chromium."""
import collections
import re
import shutil
import subprocess
import time

import grpc
import pytest

from moed_client import pb
from moed_harness import model_config, rpc_error, run_tool

CONFIG = model_config()
LAYERS = CONFIG["num_hidden_layers"]
EXPERTS = CONFIG["num_local_experts"]
TOP_K = CONFIG["num_experts_per_tok"]


PROMPT = "The expert in anything was once a beginner"


@pytest.fixture(scope="module")
def profiled(tmp_path_factory):
    """A private moed that served one greedy request; (daemon, completion)."""
    from moed_harness import Daemon
    d = Daemon(tmp_path_factory.mktemp("moed-experts")).start()
    c = d.client.complete(PROMPT, temperature=0, max_tokens=14,
                          ignore_eos=True, include_routing=True, timeout=60)
    # The stream ends before the engine thread publishes the step's snapshot: wait for the last decode input.
    deadline = time.monotonic() + 10
    while d.client.stub.GetExpertProfile(pb.GetExpertProfileRequest(), timeout=10).tokens_profiled < \
            c.prompt_tokens + len(c.token_ids) - 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    yield d, c
    d.stop()


def test_profile_counts_every_computed_token_in_every_layer(profiled):
    d, c = profiled
    prof = d.client.stub.GetExpertProfile(pb.GetExpertProfileRequest(top_n=32), timeout=10)
    # Every prompt token (the daemon's first request: nothing cached) and every generated token but the last.
    assert c.cached_tokens == 0
    prompt_ids = d.client.tokenize(PROMPT, timeout=10)
    assert len(prompt_ids) == c.prompt_tokens
    fed = prompt_ids + c.token_ids[:-1]
    assert prof.tokens_profiled == len(fed)
    assert (prof.num_layers, prof.num_experts) == (LAYERS, EXPERTS)
    assert [(x.layer, x.expert) for x in prof.experts] == [(l, e) for l in range(LAYERS) for e in range(EXPERTS)]
    assert "letters" in prof.token_classes and "cjk" in prof.token_classes
    for layer in range(LAYERS):
        per_token = collections.Counter()
        for x in prof.experts[layer * EXPERTS:(layer + 1) * EXPERTS]:
            assert sum(x.class_counts) == x.tokens
            # Fewer distinct tokens than the sketch's 32 counters: exact counts, no error.
            for t in x.top_tokens:
                assert t.error == 0
                per_token[t.token_id] += t.count
            assert sum(t.count for t in x.top_tokens) == x.tokens
        want = collections.Counter({tok: n * TOP_K for tok, n in collections.Counter(fed).items()})
        assert per_token == want, layer
        # The request's own routing counts the same tokens: the only request, nothing cached.
        for x in prof.experts[layer * EXPERTS:(layer + 1) * EXPERTS]:
            assert x.tokens == c.routing[layer].get(x.expert, 0)


def test_profile_top_n_is_bounded_and_checked(profiled):
    d, _ = profiled
    prof = d.client.stub.GetExpertProfile(pb.GetExpertProfileRequest(top_n=1), timeout=10)
    assert max(len(x.top_tokens) for x in prof.experts) == 1
    err = rpc_error(lambda: d.client.stub.GetExpertProfile(pb.GetExpertProfileRequest(top_n=33), timeout=10))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "top_n" in err.details()


def test_moectl_experts_heatmap_and_top_tokens(profiled):
    d, c = profiled
    out = run_tool("moectl", ["--addr", d.addr, "experts", "--top-n", "3"])
    assert out.returncode == 0, out.stderr
    rows = [ln for ln in out.stdout.splitlines() if re.match(r"^\s+\d+ \|", ln)]
    assert len(rows) == LAYERS
    assert len([ln for ln in out.stdout.splitlines() if re.match(r"^L\d+ E\d+", ln)]) == LAYERS * EXPERTS
    assert f"{c.prompt_tokens + len(c.token_ids) - 1} tokens profiled" in out.stdout


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian package chromium is not installed")
def test_moectl_experts_html_renders_in_headless_chromium(profiled, tmp_path):
    d, _ = profiled
    page = tmp_path / "report.html"
    out = run_tool("moectl", ["--addr", d.addr, "experts", "--html", str(page)])
    assert out.returncode == 0, out.stderr
    dom = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    # The DOM Chromium built from the page: every expert's row, the heatmap, the balance table.
    assert html.count('<tr class="expert">') == LAYERS * EXPERTS
    assert 'id="heatmap"' in html and 'id="balance"' in html
    assert html.count("<th>E") == EXPERTS
