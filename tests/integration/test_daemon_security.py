"""TLS, mTLS and bearer tokens on the gRPC front end, with a CA made in the test (openssl CLI): each admits
the clients it should and refuses the others; health stays exempt; priority < 0 needs an admin token."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import grpc
import pytest

from moed_client import MoedClient, collect, make_request, moed_pb2_grpc, pb
from moed_harness import rpc_error


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_cert(d: Path, name: str, ca: str, san: str = "") -> None:
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-subj", f"/CN={name}",
            "-out", f"{name}.csr", cwd=d)
    ext = d / f"{name}.ext"
    ext.write_text(f"subjectAltName={san}\n" if san else "basicConstraints=CA:FALSE\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key", "-CAcreateserial",
            "-days", "2", "-sha256", "-extfile", ext.name, "-out", f"{name}.crt", cwd=d)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA, a server certificate for 127.0.0.1 and a client certificate it signed; a second, untrusted CA."""
    d = tmp_path_factory.mktemp("pki")
    for ca in ("ca", "rogue-ca"):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{ca}.key", "-subj", f"/CN={ca}",
                "-days", "2", "-out", f"{ca}.crt", cwd=d)
    make_cert(d, "server", "ca", san="IP:127.0.0.1")
    make_cert(d, "client", "ca")
    make_cert(d, "rogue", "rogue-ca")
    return d


def read(p: Path) -> bytes:
    return p.read_bytes()


def secure_stub(d, pki: Path, client: str = ""):
    creds = grpc.ssl_channel_credentials(
        root_certificates=read(pki / "ca.crt"),
        private_key=read(pki / f"{client}.key") if client else None,
        certificate_chain=read(pki / f"{client}.crt") if client else None)
    channel = grpc.secure_channel(d.addr, creds)
    return channel, moed_pb2_grpc.MoedStub(channel)


def info_call(stub, metadata=()):
    return stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=10, metadata=metadata)


def tls_daemon(make_daemon, pki, *extra):
    """A TLS daemon (the harness's plaintext health check cannot reach it: the tests call it over TLS)."""
    return make_daemon("--tls-cert", str(pki / "server.crt"), "--tls-key", str(pki / "server.key"), *extra,
                       wait_health=False)


def test_tls_admits_clients_trusting_the_ca_and_refuses_plaintext(make_daemon, pki):
    d = tls_daemon(make_daemon, pki, "--health-port", "-1")
    # Probes: health alone, in plaintext, on its own port (kubelet's gRPC probes cannot speak TLS).
    health_addr = re.search(r"health on (\S+:\d+)", d.log()).group(1)
    with MoedClient(health_addr) as plain_health:
        assert plain_health.health(timeout=10) == "SERVING"
        assert plain_health.health("moed.v1.Moed", timeout=10) == "SERVING"
        err = rpc_error(lambda: plain_health.info(timeout=10))  # and nothing but health there
        assert err.code() == grpc.StatusCode.UNIMPLEMENTED
    channel, stub = secure_stub(d, pki)
    with channel:
        assert info_call(stub).num_layers > 0
        c = collect(stub.Generate(make_request("Over TLS", temperature=0, max_tokens=3, ignore_eos=True), timeout=30))
        assert c.completion_tokens == 3
    with grpc.insecure_channel(d.addr) as plain:
        err = rpc_error(lambda: info_call(moed_pb2_grpc.MoedStub(plain)))
        assert err.code() == grpc.StatusCode.UNAVAILABLE
    untrusting = grpc.secure_channel(d.addr, grpc.ssl_channel_credentials(root_certificates=read(pki / "rogue-ca.crt")))
    with untrusting:
        err = rpc_error(lambda: info_call(moed_pb2_grpc.MoedStub(untrusting)))
        assert err.code() == grpc.StatusCode.UNAVAILABLE


def test_mtls_needs_a_client_certificate_from_the_client_ca(make_daemon, pki):
    d = tls_daemon(make_daemon, pki, "--tls-client-ca", str(pki / "ca.crt"))
    channel, stub = secure_stub(d, pki, client="client")
    with channel:
        assert info_call(stub).num_layers > 0
    for client in ("", "rogue"):  # no certificate; one signed by another CA
        channel, stub = secure_stub(d, pki, client=client)
        with channel:
            err = rpc_error(lambda: info_call(stub))
            assert err.code() == grpc.StatusCode.UNAVAILABLE, (client, err)


def test_tokens_admit_refuse_and_gate_negative_priority(make_daemon, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text("# one per line\nuser-token\n\nadmin-token admin\n")
    d = make_daemon("--auth-token-file", str(tokens))
    stub = d.client.stub
    # Health is exempt (the harness already waited for SERVING without a token).
    assert d.health() == "SERVING"
    for md in [(), (("authorization", "Bearer wrong-token"),), (("authorization", "user-token"),),
               (("authorization", "Bearer user-tokenX"),)]:
        err = rpc_error(lambda: info_call(stub, md))
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED, (md, err)
        err = rpc_error(lambda: collect(stub.Generate(make_request("x", max_tokens=2), timeout=30, metadata=md)))
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED, (md, err)
    user = (("authorization", "Bearer user-token"),)
    admin = (("authorization", "Bearer admin-token"),)
    assert info_call(stub, user).num_layers > 0
    urgent = make_request("Urgent", temperature=0, max_tokens=2, ignore_eos=True, priority=-5)
    err = rpc_error(lambda: collect(stub.Generate(urgent, timeout=30, metadata=user)))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED and "admin" in err.details()
    assert collect(stub.Generate(urgent, timeout=30, metadata=admin)).completion_tokens == 2
    m = d.metrics()
    assert m.get("moed_requests_total", status="unauthenticated") == 4
    assert m.get("moed_requests_total", status="permission_denied") == 1


def test_bad_security_flags_are_refused_at_start(tmp_path):
    from moed_harness import MODEL_DIR, binary

    tokens = tmp_path / "empty"
    tokens.write_text("# nothing\n")
    for args, want in [(["--tls-cert", "x.crt"], "--tls-cert and --tls-key go together"),
                       (["--tls-client-ca", "ca.crt"], "--tls-client-ca needs --tls-cert"),
                       (["--auth-token-file", str(tokens), "--port", "0", "--metrics-port", "0"], "holds no token"),
                       (["--auth-token-file", str(tmp_path / "missing"), "--port", "0", "--metrics-port", "0"],
                        "cannot be read")]:
        out = subprocess.run([str(binary("moed")), "--model", str(MODEL_DIR), "--backend", "cpu", *args],
                             capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 2 and want in out.stderr, (args, out.stderr)


def test_moectl_and_moe_bench_reach_a_tls_and_token_server(make_daemon, pki, tmp_path):
    from moed_harness import run_tool

    tokens = tmp_path / "tokens"
    tokens.write_text("cli-token\n")
    d = tls_daemon(make_daemon, pki, "--auth-token-file", str(tokens))
    tls = ["--addr", d.addr, "--tls-ca", str(pki / "server.crt").replace("server.crt", "ca.crt")]
    ok = run_tool("moectl", [*tls, "--token", "cli-token", "info"])
    assert ok.returncode == 0 and "fortune-moe" in ok.stdout, ok.stderr
    refused = run_tool("moectl", [*tls, "info"])
    assert refused.returncode == 1 and "UNAUTHENTICATED" in refused.stderr, refused.stderr
    plain = run_tool("moectl", ["--addr", d.addr, "--token", "cli-token", "--timeout", "5s", "info"])
    assert plain.returncode == 1 and "UNAVAILABLE" in plain.stderr, plain.stderr
    bench = run_tool("moe-bench", [*tls, "--token", "cli-token", "--concurrency", "2", "--num-requests", "4",
                                   "--output-len", "4"])
    assert bench.returncode == 0, bench.stderr
    for tool in ("moectl", "moe-bench"):
        v = run_tool(tool, ["--version"])
        assert v.returncode == 0 and v.stdout.startswith(f"{tool} "), v.stdout
