"""The pipelined bulk path (RFC 2920) against real servers on 127.0.0.1.

A recording sink shows what went out in each write; aiosmtpd (which advertises PIPELINING
through the capture server) checks refusals, retries, drops, dot-stuffing, TLS and AUTH.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import logging
import re
from collections.abc import Iterator

import pytest

from fivefold._common.errors import UsageError
from fivefold.mail import Message, send_many
from fivefold.mail.bulk import jobs_from_messages
from fivefold.mail.fastcompose import WireReady
from fivefold.mail.merge import merge, plan
from fivefold.mail.pipeline import wire_body
from fivefold.mail.server import CaptureServer
from fivefold.mail.templates import MergeTemplate

from .conftest import PASSWORD, USER, ThreadedTcpServer


class RecordingSink(ThreadedTcpServer):
    """Answers SMTP line by line (pipelined or not) and records every chunk it reads."""

    def __init__(self, *, pipelining: bool) -> None:
        super().__init__()
        self.pipelining = pipelining
        self.chunks: list[bytes] = []
        self.bodies: list[bytes] = []

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buffer = b""
        body: bytes | None = None
        writer.write(b"220 sink\r\n")
        while chunk := await reader.read(1 << 16):
            self.chunks.append(chunk)
            buffer += chunk
            while True:
                if body is not None:
                    end = buffer.find(b"\r\n.\r\n")
                    if end < 0:
                        break
                    self.bodies.append(body + buffer[:end + 2])
                    buffer, body = buffer[end + 5:], None
                    writer.write(b"250 queued\r\n")
                    continue
                end = buffer.find(b"\r\n")
                if end < 0:
                    break
                line, buffer = buffer[:end], buffer[end + 2:]
                verb = line[:4].upper()
                if verb == b"EHLO":
                    extra = b"250-PIPELINING\r\n" if self.pipelining else b""
                    writer.write(b"250-sink\r\n" + extra + b"250 8BITMIME\r\n")
                elif verb == b"DATA":
                    body, buffer = b"", b"\r\n" + buffer
                    writer.write(b"354 go ahead\r\n")
                elif verb == b"QUIT":
                    writer.write(b"221 bye\r\n")
                    await writer.drain()
                    writer.close()
                    return
                else:
                    writer.write(b"250 ok\r\n")
            await writer.drain()
        writer.close()

    def grouped(self) -> int:
        """How many reads carried MAIL, RCPT and DATA together."""
        return sum(1 for c in self.chunks if b"MAIL FROM:" in c and b"RCPT TO:" in c and b"DATA\r\n" in c)


@pytest.fixture
def sink() -> Iterator[RecordingSink]:
    with RecordingSink(pipelining=True) as server:
        yield server


def batch(n: int, text: str = "hello {i}", **kw: object) -> list[Message]:
    return [Message(sender="News <news@example.org>", to=[f"u{i}@example.org"], subject=f"issue {i}",
                    text=text.format(i=i), **kw) for i in range(n)]  # type: ignore[arg-type]


def test_envelope_goes_in_one_write_when_offered(sink: RecordingSink) -> None:
    report = send_many(batch(12), server=sink.address, concurrency=2, timeout=10)
    assert report.sent == 12
    assert sink.grouped() == 12  # every message: MAIL + RCPT + DATA in one write
    assert sorted(b.split(b"Subject: ")[1].split(b"\r\n")[0] for b in sink.bodies) == \
        sorted(f"issue {i}".encode() for i in range(12))


def test_body_and_next_envelope_share_a_write(sink: RecordingSink) -> None:
    assert send_many(batch(6), server=sink.address, concurrency=1, timeout=10).sent == 6
    # Message 1 opens the connection and message 2 starts the chain; the envelopes of
    # messages 3 to 6 each ride in one write with the previous message's body.
    assert sum(b"\r\n.\r\nMAIL FROM:<" in c for c in sink.chunks) == 4
    assert len(sink.bodies) == 6


def test_one_command_per_write_without_pipelining() -> None:
    with RecordingSink(pipelining=False) as plain:
        assert send_many(batch(5), server=plain.address, concurrency=1, timeout=10).sent == 5
        assert plain.grouped() == 0 and len(plain.bodies) == 5
    with RecordingSink(pipelining=True) as offered:  # pipelining=False is honoured too
        report = send_many(batch(5), server=offered.address, concurrency=1, timeout=10, pipelining=False)
        assert report.sent == 5 and offered.grouped() == 0


def test_dot_stuffing_and_line_ends(sink: RecordingSink, capture: CaptureServer) -> None:
    text = ".starts with a dot\n..two dots\n.\nlast line without newline"
    for server in (sink.address, capture.address):
        assert send_many(batch(3, text=text), server=server, timeout=10).sent == 3
    # On the wire: every line starting with a dot got one more; the message ended at CRLF.CRLF.
    for body in sink.bodies:
        assert b"\r\n..starts with a dot\r\n...two dots\r\n..\r\nlast line" in body
    # Read back by aiosmtpd (which un-stuffs): the text is intact.
    for message in capture.messages():
        assert message.get_content().replace("\r\n", "\n").rstrip("\n") == text


def test_wire_body_normalises_and_stuffs() -> None:
    assert wire_body(b".a\nb\r.c\r\n") == b"..a\r\nb\r\n..c\r\n.\r\n"
    assert wire_body(b"x\r\n") == b"x\r\n.\r\n"
    assert wire_body(b"x") == b"x\r\n.\r\n"


@pytest.mark.parametrize("text", ["plain\nlines\n", ".leading dot\nx", "a\n.b\n", "é base64 .\n.x"])
def test_skeleton_fills_marked_wire_ready_need_no_stuffing(text: str) -> None:
    [job] = jobs_from_messages(batch(1, text=text, html="<p>.x</p>"))
    data = job.build("<m@example.org>")
    assert isinstance(data, bytes)
    # The mark is only a shortcut: the full normalising and stuffing give the same bytes.
    assert wire_body(data) == wire_body(bytes(data))
    assert isinstance(data, WireReady) == (not re.search(rb"(?m)^\.", data))


@pytest.mark.parametrize("position", [0, 2])  # the first of a connection, or one in the chain
def test_per_recipient_refusals_and_4xx_retry_pipelined(scripted, position: int) -> None:
    server = scripted(rcpt={"gone@example.org": ["550 5.1.1 no such user"],
                            "busy@example.org": ["450 4.2.1 try later", "250"]})
    people = ["ann@example.org", "gone@example.org", "busy@example.org"]
    messages = batch(4)
    messages.insert(position, Message(sender="n@example.org", to=people, subject="s", text="x"))
    report = send_many(messages, server=server.address, concurrency=1, timeout=10, backoff=0.01)
    assert (report.sent, report.failed) == (5, 0)
    first = next(r for k, r in report.results.items() if k.startswith(f"{position}:"))
    assert first.accepted == ["ann@example.org", "busy@example.org"]
    assert first.refused == {"gone@example.org": "550 5.1.1 no such user"} and first.attempts == 2
    attempts = server.handler.rcpt_attempts
    assert attempts["gone@example.org"] == 1 and attempts["busy@example.org"] == 2
    assert attempts["ann@example.org"] == 1
    envelopes = sorted(r.rcpt_tos for r in server.received())
    assert ("ann@example.org",) in envelopes and ("busy@example.org",) in envelopes
    assert len(envelopes) == 6


def test_all_refused_then_connection_still_carries_the_batch(scripted) -> None:
    # u1 is refused at RCPT, so the server refuses its DATA: the session must RSET and go on.
    server = scripted(rcpt={"u1@example.org": ["550 5.1.1 unknown"]})
    report = send_many(batch(6), server=server.address, concurrency=1, timeout=10)
    assert (report.sent, report.failed) == (5, 1)
    assert len(server.handler.sessions) == 1
    assert sorted(r.rcpt_tos[0] for r in server.received()) == [f"u{i}@example.org" for i in (0, 2, 3, 4, 5)]


def test_refused_sender_in_the_chain(scripted) -> None:
    server = scripted(mail={"blocked@example.org": "550 5.7.1 sender blocked",
                            "later@example.org": "451 4.3.0 try again"})
    messages = batch(5)
    messages[2].sender = "blocked@example.org"
    messages[3].sender = "later@example.org"
    report = send_many(messages, server=server.address, concurrency=1, timeout=10, retries=1, backoff=0.01)
    assert (report.sent, report.failed) == (3, 2)
    blocked = next(r for k, r in report.results.items() if k.startswith("2:"))
    assert "550 5.7.1 sender blocked" in blocked.refused["u2@example.org"] and blocked.attempts == 1
    deferred = next(r for k, r in report.results.items() if k.startswith("3:"))
    assert "451 4.3.0" in deferred.refused["u3@example.org"] and deferred.attempts == 2
    assert sorted(r.rcpt_tos[0] for r in server.received()) == ["u0@example.org", "u1@example.org",
                                                                 "u4@example.org"]


def test_dropped_connections_mid_batch_resume_without_duplicates(scripted, caplog) -> None:
    server = scripted(drop_every=5)
    with caplog.at_level(logging.DEBUG, logger="fivefold.mail.pipeline"):
        report = send_many(batch(24), server=server.address, concurrency=2, timeout=10, backoff=0.01)
    assert "offers PIPELINING" in caplog.text
    assert report.sent == 24 and report.failed == 0
    counts = collections.Counter(r.rcpt_tos[0] for r in server.received())
    assert len(counts) == 24 and set(counts.values()) == {1}
    assert len(server.handler.sessions) > 2


def test_slow_server_times_out_as_transient(scripted) -> None:
    server = scripted(data_delay=3)
    report = send_many(batch(1), server=server.address, timeout=0.4, retries=1, backoff=0.01)
    assert report.failed == 1
    refusal = next(iter(report.results.values())).refused["u0@example.org"]
    assert "no reply within 0.4 s" in refusal


@pytest.mark.parametrize("mode", ["starttls", "tls"])
def test_tls_and_auth_pipelined_without_secrets_in_logs(tmp_path, caplog, mode: str) -> None:
    with CaptureServer(maildir=tmp_path / "m", tls=mode, auth=(USER, PASSWORD)) as server, \
            caplog.at_level(logging.DEBUG), caplog.at_level(logging.DEBUG, logger="fivefold"):
        report = send_many(batch(6), server=server.address, security=mode, user=USER, password=PASSWORD,
                           cafile=server.cafile, concurrency=2, timeout=10)
        assert report.sent == 6 and len(server.received()) == 6
    # The server's own records ("mail.log") are the party the secret is for; ours must be clean.
    text = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("mail.log"))
    assert "offers PIPELINING" in text
    plain_blob = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
    for secret in (PASSWORD, plain_blob, base64.b64encode(PASSWORD.encode()).decode()):
        assert secret not in text


def test_merge_uses_the_pipelined_path(sink: RecordingSink) -> None:
    template = MergeTemplate(subject="Hi {{ name }}", text=".{{ name }}\nbye", html=None)
    rows = [{"email": f"p{i}@example.org", "name": f"P{i}"} for i in range(7)]
    report = merge(template, rows, sender="n@example.org", server=sink.address, concurrency=3)
    assert not isinstance(report, list) and report.sent == 7
    assert sink.grouped() == 7
    assert all(b"\r\n..P" in body for body in sink.bodies)


def test_merge_takes_a_plan_without_rows_or_sender(sink: RecordingSink) -> None:
    template = MergeTemplate(subject="Hi {{ name }}", text="{{ name }}", html=None)
    batch = plan(template, [{"email": "q@example.org", "name": "Q"}], sender="n@example.org")
    report = merge(batch, server=sink.address)
    assert not isinstance(report, list) and report.sent == 1
    # A plan already carries both; a second, different copy would be silently ignored.
    with pytest.raises(UsageError, match="carries its own rows and sender"):
        merge(batch, [{"email": "other@example.org"}], server=sink.address)
    with pytest.raises(UsageError, match="needs rows and sender"):
        merge(template, server=sink.address)


def test_group_committed_journal_records_every_message(sink: RecordingSink, tmp_path) -> None:
    import sqlite3

    outbox = tmp_path / "o.sqlite"
    report = send_many(batch(40), server=sink.address, concurrency=8, outbox=outbox, timeout=10)
    assert report.sent == 40 and len(sink.bodies) == 40
    rows = sqlite3.connect(outbox).execute("SELECT key, state, attempts, accepted FROM outbox").fetchall()
    assert len(rows) == 40
    for key, state, attempts, accepted in rows:
        index = int(key.split(":")[0])
        assert (state, attempts, accepted) == ("sent", 1, f'["u{index}@example.org"]')


def test_skeleton_refuses_a_body_containing_its_boundary() -> None:
    from email.headerregistry import Address

    from fivefold.mail.fastcompose import Skeleton

    skeleton = Skeleton(Message(sender="n@example.org", to=["x@x.invalid"], subject="s", text="t",
                                html="<p>h</p>"))
    assert skeleton.boundaries
    to = Address(username="a", domain="example.org")
    ok = skeleton.fill(to=to, subject="s", message_id="<1@x>", text="plain ===== text", html="<p>x</p>")
    assert ok is not None and b"plain ===== text" in ok
    for boundary in skeleton.boundaries:  # a body that contains a boundary needs full composition
        assert skeleton.fill(to=to, subject="s", message_id="<1@x>", text=f"a {boundary.decode()} b",
                             html="<p>x</p>") is None


@pytest.mark.parametrize("flag", [False, True])
def test_cli_merge_pipelines_unless_told_not_to(tmp_path, flag: bool) -> None:
    from click.testing import CliRunner

    from fivefold.cli import root

    (tmp_path / "tmpl").mkdir()
    (tmp_path / "tmpl" / "subject.j2").write_text("Hi {{ name }}", encoding="utf-8")
    (tmp_path / "tmpl" / "text.j2").write_text("Hello {{ name }}\n", encoding="utf-8")
    rows = tmp_path / "rows.csv"
    rows.write_text("email,name\n" + "".join(f"p{i}@example.org,P{i}\n" for i in range(5)), encoding="utf-8")
    with RecordingSink(pipelining=True) as sink:
        args = ["mail", "merge", "--template", str(tmp_path / "tmpl"), "--csv", str(rows),
                "--from", "n@example.org", "--server", sink.address, "--no-outbox", "--concurrency", "1"]
        result = CliRunner().invoke(root, args + (["--no-pipelining"] if flag else []),
                                    catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert len(sink.bodies) == 5
        assert (sink.grouped() == 0) if flag else (sink.grouped() == 5)


def test_reply_framing_across_reads() -> None:
    from fivefold.mail.pipeline import _ReplyReader

    class Transport:
        aborted = False

        def abort(self) -> None:
            self.aborted = True

    async def scenario() -> None:
        reader = _ReplyReader(Transport())  # type: ignore[arg-type]
        for piece in (b"250-first\r\n250-sec", b"ond\r\n25", b"0 last\r\n354 go\r", b"\n221 bye\n"):
            reader.data_received(piece)
        assert await reader.read(3, 1) == [(250, "first\nsecond\nlast"), (354, "go"), (221, "bye")]
        with pytest.raises(TimeoutError):
            await reader.read(1, 0.05)
        bad = Transport()
        broken = _ReplyReader(bad)  # type: ignore[arg-type]
        broken.data_received(b"hello there\r\n")
        assert bad.aborted
        with pytest.raises(ConnectionError, match="malformed reply"):
            await broken.read(1, 1)

    asyncio.run(scenario())
