"""send_many: pool reuse, reconnects, refusals, the outbox and resume after kill -9."""

from __future__ import annotations

import collections
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fivefold.mail import Message, send_many
from fivefold.mail.addresses import AddressError
from fivefold.mail.server import CaptureServer

from .conftest import ScriptedHandler

SRC = Path(__file__).resolve().parents[2] / "src"


def batch(n: int, **kw: object) -> list[Message]:
    return [Message(sender="News <news@example.org>", to=[f"u{i}@example.org"], subject=f"issue {i}",
                    text=f"hello {i}", **kw) for i in range(n)]  # type: ignore[arg-type]


def test_pool_reuses_connections_and_outbox_skips_sent(tmp_path: Path, scripted) -> None:
    server = scripted()
    outbox = tmp_path / "outbox.sqlite"
    report = send_many(batch(40), server=server.address, concurrency=4, outbox=outbox, timeout=10)
    assert (report.sent, report.failed, report.skipped) == (40, 0, 0)
    assert len(server.handler.sessions) == 4  # 4 connections carried 40 messages
    assert sorted(r.rcpt_tos[0] for r in server.received()) == sorted(f"u{i}@example.org" for i in range(40))
    again = send_many(batch(40), server=server.address, concurrency=4, outbox=outbox, timeout=10)
    assert (again.sent, again.skipped) == (0, 40)
    assert len(server.received()) == 40
    states = sqlite3.connect(outbox).execute("SELECT state, COUNT(*) FROM outbox GROUP BY state").fetchall()
    assert states == [("sent", 40)]


def test_reconnects_after_drops_without_duplicates(scripted) -> None:
    server = scripted(drop_every=7)
    report = send_many(batch(30), server=server.address, concurrency=3, timeout=10, backoff=0.01)
    assert report.sent == 30 and report.failed == 0
    counts = collections.Counter(r.rcpt_tos[0] for r in server.received())
    assert len(counts) == 30 and set(counts.values()) == {1}
    assert len(server.handler.sessions) > 3  # dropped connections were replaced


def test_refusals_are_per_message(tmp_path: Path, scripted) -> None:
    server = scripted(rcpt={"u3@example.org": ["550 5.1.1 unknown"]})
    outbox = tmp_path / "o.sqlite"
    report = send_many(batch(6), server=server.address, concurrency=2, outbox=outbox, timeout=10)
    assert (report.sent, report.failed) == (5, 1)
    failed = [r for r in report.results.values() if r.refused]
    assert failed[0].refused == {"u3@example.org": "550 5.1.1 unknown"}
    row = sqlite3.connect(outbox).execute("SELECT state, error FROM outbox WHERE state='failed'").fetchone()
    assert row[0] == "failed" and "550" in row[1]


def test_whole_batch_validated_before_sending(capture: CaptureServer) -> None:
    messages = batch(5)
    messages[4].to = ["broken address"]
    with pytest.raises(AddressError, match="message 5"):
        send_many(messages, server=capture.address, timeout=5)
    assert capture.received() == []


def test_server_down_stops_batch_with_one_error(tmp_path: Path) -> None:
    import socket

    from fivefold.mail.transport import SendError

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    outbox = tmp_path / "o.sqlite"
    with pytest.raises(SendError, match="cannot connect"):
        send_many(batch(3), server=f"127.0.0.1:{port}", outbox=outbox, retries=1, backoff=0.01, timeout=2)
    states = dict(sqlite3.connect(outbox).execute("SELECT state, COUNT(*) FROM outbox GROUP BY state"))
    assert states.get("sent", 0) == 0 and states.get("failed", 0) == 0  # nothing lost: still to send


SCRIPT = """
import json, sys
from pathlib import Path
from fivefold.mail import Message, send_many
msgs = [Message(sender="n@example.org", to=[f"u{i}@example.org"], subject=f"m{i}", text="x")
        for i in range(int(sys.argv[2]))]
report = send_many(msgs, server=sys.argv[1], concurrency=4, outbox=Path(sys.argv[3]), timeout=10)
print(json.dumps(report.to_dict()))
"""


def test_kill_9_then_resume_sends_each_message_once_except_in_flight(tmp_path: Path) -> None:
    total = 80
    handler = ScriptedHandler(tmp_path / "Maildir", data_delay=0.03)
    outbox = tmp_path / "outbox.sqlite"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    with CaptureServer(handler=handler) as server:
        argv = [sys.executable, "-c", SCRIPT, server.address, str(total), str(outbox)]
        first = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 60
            while len(server.received()) < 25 and time.monotonic() < deadline and first.poll() is None:
                time.sleep(0.01)
            os.kill(first.pid, signal.SIGKILL)
        finally:
            first.wait(30)
        assert first.returncode == -signal.SIGKILL
        before = len(server.received())
        assert 25 <= before < total
        in_flight = dict(sqlite3.connect(outbox).execute(
            "SELECT state, COUNT(*) FROM outbox GROUP BY state")).get("sending", 0)
        assert in_flight <= 4  # at most one per connection
        second = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
        assert second.returncode == 0, second.stderr
        report = json.loads(second.stdout)
        assert report["in_flight_at_start"] == in_flight
        counts = collections.Counter(r.rcpt_tos[0] for r in server.received())
    assert set(counts) == {f"u{i}@example.org" for i in range(total)}  # every message arrived
    repeats = sum(n - 1 for n in counts.values())
    # Only messages in flight at the kill can repeat (the slow DATA handler makes some do).
    assert repeats <= in_flight, f"killed after {before}; in flight {in_flight}; repeats {repeats}"
    assert report["sent"] + report["skipped"] == total
