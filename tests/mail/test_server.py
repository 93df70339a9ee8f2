"""The embedded capture server, driven by the stdlib's smtplib as an independent client."""

from __future__ import annotations

import json
import smtplib
import ssl

import pytest

from fivefold.mail.server import CaptureServer


def test_plain_capture_keeps_raw_bytes_and_envelope() -> None:
    raw = b"Subject: hi\r\nTo: b@y.org\r\n\r\nbody line\r\n"
    with CaptureServer() as server:
        assert server.port > 0
        with smtplib.SMTP("127.0.0.1", server.port, timeout=5) as client:
            client.sendmail("a@x.org", ["b@y.org", "hidden@z.org"], raw)
        [item] = server.received()
        assert item.rcpt_tos == ("b@y.org", "hidden@z.org")
        assert server.raw() == [raw]
        assert server.messages()[0]["Subject"] == "hi"
        lines = (server.maildir / "envelopes.jsonl").read_text().splitlines()
        assert json.loads(lines[0])["rcpt_tos"] == ["b@y.org", "hidden@z.org"]
        maildir = server.maildir
    assert not maildir.exists()  # the temporary Maildir goes with the server


def test_starttls_with_auth_and_implicit_tls() -> None:
    with CaptureServer(tls="starttls", auth=("u", "pw")) as server:
        assert server.cafile is not None
        context = ssl.create_default_context(cafile=str(server.cafile))
        with smtplib.SMTP("127.0.0.1", server.port, timeout=5) as client, \
                pytest.raises(smtplib.SMTPSenderRefused):  # STARTTLS and AUTH are required
            client.sendmail("a@x.org", ["b@y.org"], b"Subject: x\r\n\r\n.\r\n")
        with smtplib.SMTP("127.0.0.1", server.port, timeout=5) as client:
            client.starttls(context=context)
            with pytest.raises(smtplib.SMTPAuthenticationError):
                client.login("u", "wrong")
            client.login("u", "pw")
            client.sendmail("a@x.org", ["b@y.org"], b"Subject: tls\r\n\r\nx\r\n")
        assert [m["Subject"] for m in server.messages()] == ["tls"]
    with CaptureServer(tls="tls") as server:
        context = ssl.create_default_context(cafile=str(server.cafile))
        with smtplib.SMTP_SSL("localhost", server.port, timeout=5, context=context) as client:
            client.sendmail("a@x.org", ["b@y.org"], b"Subject: ssl\r\n\r\nx\r\n")
        assert server.wait_for(1)[0].subject == "ssl"


def test_maildir_given_persists(tmp_path) -> None:
    box = tmp_path / "box"
    with CaptureServer(maildir=box) as server, smtplib.SMTP("127.0.0.1", server.port, timeout=5) as client:
        client.sendmail("a@x.org", ["b@y.org"], b"Subject: kept\r\n\r\nx\r\n")
    assert len(list((box / "new").iterdir())) == 1


def test_demo_runs_end_to_end(tmp_path) -> None:
    from fivefold.mail.demo import demo

    outputs = demo(tmp_path / "mail")
    assert outputs["Bcc in the bytes on the wire"] == "no"
    assert "auditor@example.net" in outputs["envelope recipients"]
    assert outputs["subject as received"] == "Weekly report — 週報 ✓"
    assert "image/png [chart.png]" in outputs["MIME structure"]
    assert "Résumé – 履歴書.txt" in outputs["MIME structure"]
    assert (tmp_path / "mail" / "received.eml").is_file()
