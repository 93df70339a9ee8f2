"""Sending against real servers on 127.0.0.1: TLS modes, verification, AUTH, refusals, timeouts."""

from __future__ import annotations

import base64
import logging
import socket
import time

import pytest

from fivefold._common.errors import UsageError
from fivefold.mail import Message, send
from fivefold.mail.server import CaptureServer
from fivefold.mail.transport import Endpoint, SendError

from .conftest import PASSWORD, USER


def msg(*to: str, **kw: object) -> Message:
    return Message(sender="Robot <robot@example.org>", to=list(to) or ["ann@example.org"], subject="hello",
                   text="body", **kw)  # type: ignore[arg-type]


def test_endpoint_defaults_from_port() -> None:
    assert Endpoint.parse("smtp.x.org:465").security == "tls"
    assert Endpoint.parse("smtp.x.org:587").security == "starttls"
    assert Endpoint.parse("smtp.x.org").port == 25 and Endpoint.parse("smtp.x.org").security == "none"
    assert Endpoint.parse("[::1]:2525").host == "::1"
    assert Endpoint.parse("h:465", "starttls").security == "starttls"
    with pytest.raises(UsageError):
        Endpoint.parse("h:99999")
    with pytest.raises(UsageError):
        Endpoint.parse("h:25", "ssl")


def test_starttls_auth_verified_with_cafile(tls_capture: CaptureServer) -> None:
    result = send(msg(), server=tls_capture.address, security="starttls", user=USER, password=PASSWORD,
                  timeout=10, cafile=tls_capture.cafile)
    assert result.ok and result.accepted == ["ann@example.org"]
    assert tls_capture.messages()[0]["Subject"] == "hello"


def test_implicit_tls_and_xoauth2(tmp_path) -> None:
    with CaptureServer(maildir=tmp_path / "m", tls="tls", auth=(USER, "tok-123")) as server:
        result = send(msg(), server=server.address, security="tls", timeout=10, cafile=server.cafile,
                      user=USER, oauth_token="tok-123")
        assert result.ok
        with pytest.raises(SendError, match="authentication refused"):
            send(msg(), server=server.address, security="tls", timeout=10, cafile=server.cafile,
                 user=USER, oauth_token="wrong", retries=0)


def test_self_signed_refused_without_cafile_insecure_warns(tls_capture: CaptureServer, caplog) -> None:
    started = time.monotonic()
    with pytest.raises(SendError, match="certificate not trusted") as info:
        send(msg(), server=tls_capture.address, security="starttls", user=USER, password=PASSWORD, timeout=10)
    assert not info.value.transient and time.monotonic() - started < 5  # permanent: not retried
    with caplog.at_level(logging.WARNING, logger="fivefold"):
        result = send(msg(), server=tls_capture.address, security="starttls", user=USER, password=PASSWORD,
                      timeout=10, insecure=True)
    assert result.ok
    assert any("NOT verified" in r.getMessage() for r in caplog.records)


def test_auth_refused_is_clear_and_never_retried(tls_capture: CaptureServer) -> None:
    with pytest.raises(SendError) as info:
        send(msg(), server=tls_capture.address, user=USER, password="wrong-password", timeout=10,
             cafile=tls_capture.cafile, security="starttls")
    text = str(info.value)
    assert "authentication refused for user 'robot'" in text and "535" in text
    assert "wrong-password" not in text
    assert tls_capture.received() == []


def test_no_secret_in_debug_logs(tls_capture: CaptureServer, caplog) -> None:
    secrets = {PASSWORD, base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode(),
               base64.b64encode(PASSWORD.encode()).decode()}
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("fivefold").setLevel(logging.DEBUG)
        send(msg(), server=tls_capture.address, user=USER, password=PASSWORD, timeout=10,
             cafile=tls_capture.cafile, security="starttls")
        with pytest.raises(SendError) as info:
            send(msg(), server=tls_capture.address, user=USER, password=PASSWORD + "x", timeout=10,
                 cafile=tls_capture.cafile, security="starttls")
    # The server under test (aiosmtpd, logger "mail.log") is the party the secret is for; every
    # other record, ours and the SMTP client's, must be clean.
    client_records = [r for r in caplog.records if not r.name.startswith("mail.log")]
    assert any(r.name.startswith("fivefold") for r in client_records)
    text = "\n".join(r.getMessage() for r in client_records) + str(info.value) + repr(info.value)
    for secret in secrets:
        assert secret not in text


def test_per_recipient_refusals_and_transient_retry(scripted) -> None:
    server = scripted(rcpt={"gone@example.org": ["550 5.1.1 no such user"],
                            "busy@example.org": ["450 4.2.1 try later", "250"],
                            "full@example.org": ["452 4.2.2 mailbox full"]})
    result = send(msg("ann@example.org", "gone@example.org", "busy@example.org", "full@example.org"),
                  server=server.address, timeout=10, retries=2, backoff=0.01)
    assert result.accepted == ["ann@example.org", "busy@example.org"]
    assert result.refused["gone@example.org"].startswith("550")
    assert result.refused["full@example.org"].startswith("452")
    attempts = server.handler.rcpt_attempts  # type: ignore[attr-defined]
    assert attempts["gone@example.org"] == 1  # 5xx: never retried
    assert attempts["busy@example.org"] == 2  # 4xx then accepted
    assert attempts["full@example.org"] == 3  # 4xx every time: retried until retries run out
    assert attempts["ann@example.org"] == 1  # accepted recipients are not sent to again
    delivered = server.received()
    assert [d.rcpt_tos for d in delivered] == [("ann@example.org",), ("busy@example.org",)]


def test_all_refused_returns_refusals(scripted) -> None:
    server = scripted(rcpt={"gone@example.org": ["550 5.1.1 no such user"]})
    result = send(msg("gone@example.org"), server=server.address, timeout=10, retries=2)
    assert not result.ok and result.accepted == [] and list(result.refused) == ["gone@example.org"]
    assert server.received() == []


def test_slow_data_times_out_then_gives_up(scripted) -> None:
    server = scripted(data_delay=5)
    started = time.monotonic()
    with pytest.raises(SendError, match=r"no reply within 0\.5 s") as info:
        send(msg(), server=server.address, timeout=0.5, retries=1, backoff=0.01)
    assert info.value.transient
    assert time.monotonic() - started < 3


def test_wrong_tls_mode_fails_fast_not_hang(tmp_path) -> None:
    with CaptureServer(maildir=tmp_path / "a", tls="tls") as implicit:
        started = time.monotonic()
        with pytest.raises(SendError, match=r"no SMTP greeting within 1 s .*--security tls"):
            send(msg(), server=implicit.address, security="starttls", timeout=1, retries=0)
        assert time.monotonic() - started < 2.5
    with CaptureServer(maildir=tmp_path / "b") as plain:
        started = time.monotonic()
        with pytest.raises(SendError, match="TLS handshake failed"):
            send(msg(), server=plain.address, security="tls", timeout=5, retries=0)
        assert time.monotonic() - started < 2.5
        with pytest.raises(SendError, match="does not offer STARTTLS"):
            send(msg(), server=plain.address, security="starttls", timeout=5, retries=0)


def test_smtputf8_on_and_off(scripted) -> None:
    on = scripted(smtputf8=True)
    result = send(msg("jörg@exämple.org"), server=on.address, timeout=10)
    assert result.ok
    raw = on.raw()[0]
    assert "To: jörg@exämple.org".encode() in raw
    off = scripted(smtputf8=False)
    with pytest.raises(SendError, match="needs SMTPUTF8"):
        send(msg("jörg@exämple.org"), server=off.address, timeout=10)
    assert off.received() == []


def test_server_down_and_plain_remote_refused() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(SendError, match="cannot connect") as info:
        send(msg(), server=f"127.0.0.1:{port}", timeout=2, retries=1, backoff=0.01)
    assert info.value.transient
    with pytest.raises(UsageError, match="--allow-plain"):
        send(msg(), server="mail.example.org:25", timeout=2)


def test_sync_send_works_inside_a_running_loop(capture: CaptureServer) -> None:
    import asyncio

    from fivefold.mail import send_async

    async def caller() -> tuple[bool, bool]:
        inside = send(msg(), server=capture.address, timeout=10)  # sync API from async code
        awaited = await send_async(msg(), server=capture.address, timeout=10)
        return inside.ok, awaited.ok

    assert asyncio.run(caller()) == (True, True)
    assert len(capture.received()) == 2


def test_idn_domain_goes_as_punycode_without_smtputf8(scripted) -> None:
    off = scripted(smtputf8=False)
    result = send(msg("Anna <anna@bücher.example>"), server=off.address, timeout=10)
    assert result.accepted == ["anna@xn--bcher-kva.example"]
    assert b"To: Anna <anna@xn--bcher-kva.example>" in off.raw()[0]
