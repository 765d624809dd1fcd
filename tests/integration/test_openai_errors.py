"""The OpenAI HTTP front's front-door behaviour, through the `openai` SDK's exception types: 400 naming the unknown
parameter or the field and its limit, 401 without a good token, 404, 429 on a full queue, 503 while draining, a
model without a chat template; TLS and mTLS; and a streaming client that does not read is cut and its KV freed."""

from __future__ import annotations

import json
import signal
import socket
import ssl
import threading
import time

import urllib.error
import urllib.request

import openai
import pytest

import grpc

from moed_client import collect, make_request, moed_pb2_grpc
from test_daemon_security import make_cert, openssl  # noqa: F401  (the CA helpers of the gRPC TLS tests)

MODEL = "fortune-moe"


def sdk(d, scheme="http", api_key="unused", **kwargs) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{scheme}://{d.http_addr}/v1", api_key=api_key, max_retries=0, timeout=60,
                         **kwargs)


@pytest.fixture(scope="module")
def http(tmp_path_factory):
    from moed_harness import Daemon

    d = Daemon(tmp_path_factory.mktemp("moed-openai-errors"), "--http-port", "-1", "--max-tokens-limit", "512",
               "--max-stop-strings", "2").start()
    yield d
    assert d.stop() == 0, d.log_tail()


def raw(d, path: str, body: bytes | None = None, method: str = "GET"):
    """(status, parsed JSON body) of a plain HTTP request to the OpenAI front."""
    req = urllib.request.Request(f"http://{d.http_addr}{path}", data=body, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def error_of(fn, kind):
    with pytest.raises(kind) as e:
        fn()
    return e.value


def test_unknown_parameter_is_refused_by_name(http):
    e = error_of(lambda: sdk(http).completions.create(model=MODEL, prompt="x", max_tokens=2,
                                                      extra_body={"frequency_penalty": 0.5}), openai.BadRequestError)
    assert e.status_code == 400 and e.param == "frequency_penalty" and "frequency_penalty" in e.message
    assert e.type == "invalid_request_error"
    e = error_of(lambda: sdk(http).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}],
                                                           extra_body={"tools_please": True}), openai.BadRequestError)
    assert e.param == "tools_please"


def test_bad_values_name_the_field_and_limit(http):
    rejected = lambda reason: http.metrics().get("moed_requests_rejected_total", front="http", reason=reason)
    invalid, unparseable = rejected("invalid_argument"), rejected("unparseable")
    e = error_of(lambda: sdk(http).completions.create(model=MODEL, prompt="x", max_tokens=5000),
                 openai.BadRequestError)
    assert e.param == "max_tokens" and "512" in e.message, e.message
    e = error_of(lambda: sdk(http).completions.create(model=MODEL, prompt="x", temperature=-1),
                 openai.BadRequestError)
    assert e.param == "temperature", e.message
    e = error_of(lambda: sdk(http).completions.create(model=MODEL, prompt="x", stop=["a", "b", "c"]),
                 openai.BadRequestError)
    assert e.param == "stop" and "2" in e.message, e.message
    e = error_of(lambda: sdk(http).completions.create(model=MODEL, prompt=["one", "two"]), openai.BadRequestError)
    assert e.param == "prompt" and "one prompt per request" in e.message
    e = error_of(lambda: sdk(http).completions.create(model=MODEL, prompt="x", n=0), openai.BadRequestError)
    assert e.param == "n"
    e = error_of(lambda: sdk(http).completions.create(model=MODEL, prompt=[1, 10**6]), openai.BadRequestError)
    assert e.param == "prompt" and "vocabulary" in e.message, e.message
    status, body = raw(http, "/v1/completions", b"{not json", "POST")
    assert status == 400 and "JSON" in body["error"]["message"]
    # Each refusal counted once, under the HTTP front, whichever layer refused it (parser, validator, tokenizer).
    assert rejected("invalid_argument") - invalid == 6 and rejected("unparseable") - unparseable == 1


def test_unknown_model_and_path_are_404(http):
    before = http.metrics()
    e = error_of(lambda: sdk(http).completions.create(model="gpt-9", prompt="x"), openai.NotFoundError)
    assert e.status_code == 404 and e.code == "model_not_found" and "gpt-9" in e.message
    after = http.metrics()
    for name, labels in (("moed_requests_rejected_total", {"reason": "unknown_model"}),
                         ("moed_requests_total", {"status": "not_found"})):
        assert after.get(name, front="http", **labels) - before.get(name, front="http", **labels) == 1, name
    status, body = raw(http, "/v1/embeddings")
    assert status == 404 and body["error"]["type"] == "not_found_error"
    assert raw(http, "/v1/completions")[0] == 405


def test_chat_without_a_template_is_a_clear_400(http):
    # fortune-moe's tokenizer_config.json has no chat_template and this daemon got no --chat-template.
    e = error_of(lambda: sdk(http).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}]),
                 openai.BadRequestError)
    assert "no chat template" in e.message and "--chat-template" in e.message


def test_tokens_401_and_admin_priority(make_daemon, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text("user-token\nadmin-token admin\n")
    d = make_daemon("--http-port", "-1", "--auth-token-file", str(tokens))
    e = error_of(lambda: sdk(d, api_key="wrong").completions.create(model=MODEL, prompt="x", max_tokens=2),
                 openai.AuthenticationError)
    assert e.status_code == 401 and e.code == "invalid_api_key"
    status, body = raw(d, "/v1/completions", b'{"prompt": "x"}', "POST")  # no Authorization header at all
    assert status == 401 and body["error"]["type"] == "authentication_error"
    e = error_of(lambda: sdk(d, api_key="bad").models.list(), openai.AuthenticationError)
    assert sdk(d, api_key="user-token").completions.create(model=MODEL, prompt="x", max_tokens=2).usage
    e = error_of(lambda: sdk(d, api_key="user-token").completions.create(model=MODEL, prompt="x", max_tokens=2,
                                                                         extra_body={"priority": -1}),
                 openai.PermissionDeniedError)
    assert e.status_code == 403
    assert sdk(d, api_key="admin-token").completions.create(model=MODEL, prompt="x", max_tokens=2,
                                                            extra_body={"priority": -1}).usage
    # /health stays exempt, for probes.
    assert raw(d, "/health") == (200, {"status": "ok"})
    # Counted like gRPC's refusals: the two generation requests without a good token (not /v1/models).
    assert d.metrics().get("moed_requests_total", front="http", status="unauthenticated") == 2
    assert d.metrics().get("moed_requests_total", front="http", status="permission_denied") == 1


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki-http")
    for ca in ("ca", "rogue-ca"):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{ca}.key", "-subj", f"/CN={ca}",
                "-days", "2", "-out", f"{ca}.crt", cwd=d)
    make_cert(d, "server", "ca", san="IP:127.0.0.1")
    make_cert(d, "client", "ca")
    make_cert(d, "rogue", "rogue-ca")
    return d


def test_tls_mtls_and_token_on_http(make_daemon, pki, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text("secret\n")
    d = make_daemon("--http-port", "-1", "--tls-cert", str(pki / "server.crt"), "--tls-key", str(pki / "server.key"),
                    "--tls-client-ca", str(pki / "ca.crt"), "--auth-token-file", str(tokens), wait_health=False)

    def client(cert: str, key: str = "secret"):
        ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        if cert:
            ctx.load_cert_chain(str(pki / f"{cert}.crt"), str(pki / f"{cert}.key"))
        return sdk(d, scheme="https", api_key=key, http_client=openai.DefaultHttpxClient(verify=ctx))

    out = client("client").completions.create(model=MODEL, prompt="Over TLS", max_tokens=3,
                                              extra_body={"ignore_eos": True})
    assert out.usage.completion_tokens == 3
    error_of(lambda: client("client", key="nope").completions.create(model=MODEL, prompt="x"),
             openai.AuthenticationError)
    for cert in ("", "rogue"):  # no client certificate, or one from another CA: the handshake fails
        error_of(lambda: client(cert).completions.create(model=MODEL, prompt="x"), openai.APIConnectionError)
    # Plaintext to the TLS port gets no HTTP answer.
    error_of(lambda: sdk(d, api_key="secret").completions.create(model=MODEL, prompt="x"), openai.APIConnectionError)


def health_over(sock: socket.socket) -> bytes:
    """The first bytes answering GET /health on an open connection; b"" when the server closed it."""
    try:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: moed\r\n\r\n")
        return sock.recv(4096)
    except (ConnectionResetError, BrokenPipeError):
        return b""


def test_connections_over_the_cap_are_closed(make_daemon):
    d = make_daemon("--http-port", "-1", "--http-max-connections", "2")
    host, port = d.http_addr.rsplit(":", 1)
    held = [socket.create_connection((host, int(port)), timeout=10) for _ in range(2)]
    for sock in held:  # both answered and kept alive: two sessions open on the server
        assert health_over(sock).startswith(b"HTTP/1.1 200")
    with socket.create_connection((host, int(port)), timeout=10) as extra:
        assert health_over(extra) == b""
    held[0].close()
    # Once the server has seen that close, a new connection is served (polled: the close travels asynchronously).
    deadline = time.monotonic() + 30
    while True:
        with socket.create_connection((host, int(port)), timeout=10) as again:
            if health_over(again).startswith(b"HTTP/1.1 200"):
                break
        assert time.monotonic() < deadline, "a slot freed by a closed connection was never reused"
        time.sleep(0.05)
    assert health_over(held[1]).startswith(b"HTTP/1.1 200")  # the held connection was never disturbed
    held[1].close()


def test_full_queue_is_429(make_daemon):
    # --min-step-time 10ms: the 1000-token request runs for at least 10 s on any machine, so the queue stays full
    # for the whole test (they are cancelled at its end).
    d = make_daemon("--http-port", "-1", "--max-queue", "1", "--max-running-seqs", "1", "--min-step-time", "10ms")
    # One long request runs and one waits (submitted one after the other): the queue is full until they end.
    def drain(call):
        try:
            collect(call)
        except Exception:  # cancelled below
            pass

    calls, threads = [], []
    try:
        for gauge in ("moed_requests_running", "moed_requests_waiting"):
            calls.append(d.client.generate_stream(make_request(f"Hold {gauge}", temperature=0, max_tokens=1000,
                                                               ignore_eos=True), timeout=120))
            threads.append(threading.Thread(target=drain, args=(calls[-1],)))
            threads[-1].start()
            assert d.wait_metric(gauge, 1, timeout=30) == 1
        e = error_of(lambda: sdk(d).completions.create(model=MODEL, prompt="x", max_tokens=2),
                     openai.RateLimitError)
        assert e.status_code == 429 and e.type == "rate_limit_error"
        assert d.metrics().get("moed_requests_total", front="http", status="resource_exhausted") == 1
        assert d.metrics().get("moed_requests_rejected_total", front="http", reason="queue_full") == 1
        assert d.metrics().get("moed_requests_rejected_total", front="grpc", reason="queue_full") == 0
    finally:
        for c in calls:
            c.cancel()
        for t in threads:
            t.join()


def test_draining_is_503(make_daemon):
    d = make_daemon("--http-port", "-1", "--shutdown-timeout", "60s")
    # A gRPC stream whose client reads nothing through a small window: it stays open (undelivered) after the engine
    # ends it, so the drain waits for it however fast the machine is.
    channel = grpc.insecure_channel(d.addr, options=[("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 1024)])
    hold = moed_pb2_grpc.MoedStub(channel).Generate(
        make_request("Hold the drain", temperature=0, max_tokens=900, ignore_eos=True, logprobs=20), timeout=120)
    try:
        assert d.wait_metric("moed_streams_open", 1, timeout=30) == 1
        d.signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        while (health := raw(d, "/health"))[0] != 503:
            assert time.monotonic() < deadline, "health never became 503"
            time.sleep(0.05)
        assert health[1]["error"]["type"] == "server_error"
        e = error_of(lambda: sdk(d).completions.create(model=MODEL, prompt="x", max_tokens=2), openai.APIStatusError)
        assert e.status_code == 503 and "shutting down" in e.message, e
    finally:
        hold.cancel()
        channel.close()
    assert d.proc.wait(timeout=60) == 0


def test_a_stream_that_is_not_read_is_cut_and_its_kv_freed(make_daemon):
    d = make_daemon("--http-port", "-1", "--stream-stall-timeout", "1s", "--stream-buffer-bytes", "16384")
    host, port = d.http_addr.rsplit(":", 1)
    body = json.dumps({"model": MODEL, "prompt": "Never read", "max_tokens": 1000, "temperature": 0,
                       "ignore_eos": True, "stream": True, "logprobs": 5}).encode()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window that fills at once
    s.connect((host, int(port)))
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    try:
        # Each token is a ~330-byte chunk (~77 bytes of the output budget): the sockets hold ~136 KiB (the server's
        # 64 KiB send buffer, doubled by the kernel, and the client's 4 KiB), ~410 tokens; the 16 KiB budget
        # ~210 more. So the engine is cut well before 1000 tokens (~480 here), however fast it is, and its KV freed.
        assert d.wait_metric("moed_requests_total", 1, timeout=60, front="http", status="resource_exhausted") == 1
        assert d.wait_metric("moed_kv_cache_blocks_used", 0, timeout=30) == 0
        assert d.metrics().get("moed_requests_total", front="http", status="ok") == 0
        assert 0 < d.metrics().get("moed_generated_tokens_total") < 1000
        assert "the client is not reading" in d.log() or "has not read" in d.log()
    finally:
        s.close()
    # The daemon still serves others.
    assert sdk(d).completions.create(model=MODEL, prompt="after", max_tokens=2).usage.completion_tokens == 2
