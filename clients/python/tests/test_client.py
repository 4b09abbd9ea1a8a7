"""The helper module: configuration, the API key on every kind of call, readable errors, and
the generated code (importable, and up to date with the protos)."""

from __future__ import annotations

import asyncio
import filecmp
import importlib
import os
import shutil
import subprocess
import sys

import grpc
import pytest
from conftest import ADMIN_KEY, CLIENT_DIR, REPO_DIR, TEST_KEY

import servicedesk
from servicedesk import ConfigurationError, Desk, connect, connect_async, describe_error
from servicedesk.client import DEFAULT_TARGET
from servicedesk.v1 import admin_pb2, desk_pb2, types_pb2

GENERATED = ["admin", "agent", "desk", "escalation", "types"]


def test_generated_modules_import_inside_the_package():
    for name in GENERATED:
        pb2 = importlib.import_module(f"servicedesk.v1.{name}_pb2")
        importlib.import_module(f"servicedesk.v1.{name}_pb2_grpc")
        assert pb2.DESCRIPTOR.name == f"servicedesk/v1/{name}.proto"
    # BadRequest and ErrorInfo come from googleapis-common-protos, not from a copy of ours.
    assert not (CLIENT_DIR / "google").exists()
    assert not list((CLIENT_DIR / "servicedesk").rglob("error_details_pb2.py"))


def test_configuration_from_the_environment(monkeypatch):
    monkeypatch.delenv("SERVICEDESK_TARGET", raising=False)
    monkeypatch.delenv("SERVICEDESK_API_KEY", raising=False)
    monkeypatch.delenv("SERVICEDESK_TLS_CA", raising=False)
    with pytest.raises(ConfigurationError, match="SERVICEDESK_API_KEY"):
        connect()
    monkeypatch.setenv("SERVICEDESK_API_KEY", "k")
    with connect() as sd:
        assert sd.target == DEFAULT_TARGET == "127.0.0.1:50051"
        assert sd.api_key == "k"
    monkeypatch.setenv("SERVICEDESK_TARGET", "http://desk.internal:7000/")
    with connect() as sd:
        assert sd.target == "desk.internal:7000"
    monkeypatch.setenv("SERVICEDESK_TARGET", "https://desk.example.com:443")
    with connect() as sd:  # TLS with the system roots
        assert sd.target == "desk.example.com:443"
    monkeypatch.setenv("SERVICEDESK_TLS_CA", "/nonexistent/ca.pem")
    with pytest.raises(ConfigurationError, match="SERVICEDESK_TLS_CA"):
        connect()


def test_the_key_travels_with_unary_and_streaming_calls(server):
    with connect(server.target, TEST_KEY) as sd:
        reply = sd.desk.HandleInquiry(desk_pb2.HandleInquiryRequest(
            customer_id="cust_client", inquiry="How do I reset my password?"), timeout=10)
        assert reply.ticket.status == types_pb2.TICKET_STATUS_RESOLVED
        # A server stream: replays the finished ticket's events and ends.
        events = list(sd.desk.WatchTicket(desk_pb2.WatchTicketRequest(
            ticket_id=reply.ticket.ticket_id), timeout=10))
        assert events[0].type == types_pb2.TICKET_EVENT_TYPE_CREATED
        assert events[-1].type == types_pb2.TICKET_EVENT_TYPE_RESOLVED
        # Futures go through the interceptor too.
        future = sd.desk.GetTicket.future(
            desk_pb2.GetTicketRequest(ticket_id=reply.ticket.ticket_id), timeout=10)
        assert future.result().ticket_id == reply.ticket.ticket_id


def test_an_explicit_key_on_the_call_wins(server):
    with connect(server.target, TEST_KEY) as sd:
        status = sd.admin.GetDeskStatus(admin_pb2.GetDeskStatusRequest(), timeout=10,
                                        metadata=[("x-api-key", ADMIN_KEY)])
        assert [t.name for t in status.tiers] == ["L1", "L2", "Expert"]


def test_describe_error_lists_the_field_violations(server):
    with connect(server.target, TEST_KEY) as sd:
        with pytest.raises(grpc.RpcError) as caught:
            sd.desk.HandleInquiry(desk_pb2.HandleInquiryRequest(
                customer_id="", inquiry="  ", priority=42), timeout=10)
    text = describe_error(caught.value)
    lines = text.splitlines()
    assert lines[0].startswith("INVALID_ARGUMENT: ")
    assert "  - customer_id: is required" in lines
    assert any(line.startswith("  - inquiry: ") for line in lines)
    assert any(line.startswith("  - priority: ") for line in lines)
    details = servicedesk.error_details(caught.value)
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT
    assert {f for f, _ in details.field_violations} == {"customer_id", "inquiry", "priority"}


def test_describe_error_for_auth_and_unreachable_servers(server):
    with connect(server.target, "wrong-key") as sd:
        with pytest.raises(grpc.RpcError) as caught:
            sd.admin.GetDeskStatus(admin_pb2.GetDeskStatusRequest(), timeout=10)
    assert describe_error(caught.value).startswith("UNAUTHENTICATED: ")
    with connect(server.target, TEST_KEY) as sd:
        with pytest.raises(grpc.RpcError) as caught:
            sd.admin.GetDeskStatus(admin_pb2.GetDeskStatusRequest(), timeout=10)
    assert describe_error(caught.value).startswith("PERMISSION_DENIED: ")
    assert describe_error(ValueError("boom")) == "ValueError: boom"


def test_async_client(server):
    async def main():
        async with connect_async(server.target, TEST_KEY) as sd:
            reply = await sd.desk.HandleInquiry(desk_pb2.HandleInquiryRequest(
                customer_id="cust_async", inquiry="How do I reset my password?"), timeout=10)
            events = [e async for e in sd.desk.WatchTicket(
                desk_pb2.WatchTicketRequest(ticket_id=reply.ticket.ticket_id), timeout=10)]
            try:
                await sd.desk.HandleInquiry(desk_pb2.HandleInquiryRequest(), timeout=10)
            except grpc.RpcError as err:
                return reply, events, describe_error(err)
            raise AssertionError("an empty inquiry was accepted")

    reply, events, error = asyncio.run(main())
    assert reply.tier == "L1"
    assert events[-1].type == types_pb2.TICKET_EVENT_TYPE_RESOLVED
    assert error.startswith("INVALID_ARGUMENT") and "  - customer_id: " in error


def test_generated_code_is_up_to_date(tmp_path):
    """generate.sh reproduces the committed servicedesk/v1/ byte for byte."""
    pytest.importorskip("grpc_tools", reason="grpcio-tools (requirements-dev.txt) is needed")
    copy = tmp_path / "clients" / "python"
    copy.mkdir(parents=True)
    (tmp_path / "proto").symlink_to(REPO_DIR / "proto")
    shutil.copy2(CLIENT_DIR / "generate.sh", copy)
    shutil.copy2(CLIENT_DIR / "requirements-dev.txt", copy)
    (copy / "servicedesk" / "v1").mkdir(parents=True)
    env = dict(os.environ, PYTHON=sys.executable)
    for _ in range(2):  # idempotent: a second run changes nothing either
        result = subprocess.run(["bash", str(copy / "generate.sh")], env=env,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        ours = CLIENT_DIR / "servicedesk" / "v1"
        theirs = copy / "servicedesk" / "v1"
        names = sorted(p.name for p in ours.iterdir() if p.is_file() and p.suffix in (".py", ".pyi"))
        assert names == sorted(p.name for p in theirs.iterdir() if p.is_file())
        match, mismatch, errors = filecmp.cmpfiles(ours, theirs, names, shallow=False)
        assert not mismatch and not errors, f"regenerate with generate.sh: {mismatch + errors}"


def test_desk_repr_and_wait_ready(server):
    with Desk(server.target, ADMIN_KEY) as sd:
        sd.wait_ready(timeout=10)
        assert repr(sd) == f"Desk(target={server.target!r})"
