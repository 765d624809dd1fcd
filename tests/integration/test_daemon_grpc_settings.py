"""gRPC transport settings: reflection only with --enable-reflection, and then enough for a grpcurl-style
client to call health knowing nothing but the address; connections that never finish their handshake are
closed after --grpc-handshake-timeout while new clients keep being served."""

from __future__ import annotations

import socket

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase


def health_through_reflection(addr: str) -> str:
    """What `grpcurl -plaintext ADDR grpc.health.v1.Health/Check` does: descriptors from the server only."""
    with grpc.insecure_channel(addr) as channel:
        pool = DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
        method = pool.FindServiceByName("grpc.health.v1.Health").FindMethodByName("Check")
        request = message_factory.GetMessageClass(method.input_type)
        response = message_factory.GetMessageClass(method.output_type)
        check = channel.unary_unary("/grpc.health.v1.Health/Check", request_serializer=lambda m: m.SerializeToString(),
                                    response_deserializer=response.FromString)
        reply = check(request(service=""), timeout=10)
        return method.output_type.fields_by_name["status"].enum_type.values_by_number[reply.status].name


def test_reflection_is_off_by_default(daemon):
    with grpc.insecure_channel(daemon.addr) as channel:
        db = ProtoReflectionDescriptorDatabase(channel)
        try:
            services = db.get_services()
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.UNIMPLEMENTED
        else:
            raise AssertionError(f"reflection answered: {services}")


def test_health_check_through_reflection_alone(make_daemon):
    d = make_daemon("--enable-reflection")
    with grpc.insecure_channel(d.addr) as channel:
        services = set(ProtoReflectionDescriptorDatabase(channel).get_services())
    assert {"moed.v1.Moed", "grpc.health.v1.Health"} <= services, services
    assert health_through_reflection(d.addr) == "SERVING"


def test_connections_that_never_handshake_are_closed(make_daemon):
    d = make_daemon("--grpc-handshake-timeout", "1s")
    host, port = d.addr.rsplit(":", 1)
    idle = [socket.create_connection((host, int(port)), timeout=30) for _ in range(50)]
    try:
        # New clients are served while the idle connections are open.
        assert d.client.info(timeout=5).num_layers > 0
        # Each idle connection is closed by the server (EOF after whatever it sent first) once the handshake
        # timeout has passed; a socket timeout (30 s) here means it was kept open.
        for s in idle:
            s.settimeout(30)
            while s.recv(1024):
                pass
    finally:
        for s in idle:
            s.close()
    assert d.client.info(timeout=5).num_layers > 0
