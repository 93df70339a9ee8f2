"""Large attachments stream from disk: intact on arrival, and peak memory far below the file size x 4."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from fivefold.mail import Attachment, Message, send
from fivefold.mail.server import CaptureServer
from fivefold.mail.streaming import STREAM_THRESHOLD

from .conftest import RawSink

SRC = Path(__file__).resolve().parents[2] / "src"


def test_streamed_attachment_arrives_intact(tmp_path: Path, capture: CaptureServer) -> None:
    big = tmp_path / "données brutes.bin"
    # Bytes that look like SMTP trouble if anything went unencoded: dots at line starts, CRs, LFs.
    pattern = b".\r\n..\n\r.end\x00\xff" * 1000
    big.write_bytes(pattern * (STREAM_THRESHOLD // len(pattern) + 3))
    message = Message(sender="a@example.org", to=["b@example.org"], subject="big", text=".leading dot\n",
                      attachments=[Attachment.from_path(big), Attachment("small.txt", data=b"small")])
    assert send(message, server=capture.address, timeout=30).ok
    [parsed] = capture.messages()
    names = {part.get_filename(): part.get_payload(decode=True) for part in parsed.iter_attachments()}
    assert hashlib.sha256(names["données brutes.bin"]).digest() == hashlib.sha256(big.read_bytes()).digest()
    assert names["small.txt"] == b"small"
    assert parsed.get_body(("plain",)).get_content().replace("\r\n", "\n") == ".leading dot\n"


SCRIPT = """
import json, sys
from pathlib import Path
from fivefold.mail import Attachment, Message, send
import aiosmtplib

def hwm():
    # VmHWM belongs to this process image; ru_maxrss would carry the forking parent's peak over exec.
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith("VmHWM:"))

base = hwm()
msg = Message(sender="a@example.org", to=["b@example.org"], subject="25 MB", text="see attachment",
              attachments=[Attachment.from_path(Path(sys.argv[2]))])
result = send(msg, server=sys.argv[1], timeout=60)
peak = hwm()
print(json.dumps({"ok": result.ok, "base_kib": base, "peak_kib": peak}))
"""


def test_25_mb_attachment_peak_rss_under_4x(tmp_path: Path) -> None:
    size = 25_000_000
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(size))
    # aiosmtpd parses DATA a line at a time (seconds for 34 MB); this sink only counts bytes.
    with RawSink() as sink:
        done = subprocess.run([sys.executable, "-c", SCRIPT, sink.address, str(big)], capture_output=True,
                              text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(SRC)})
        assert done.returncode == 0, done.stderr
        assert sink.messages == 1 and sink.data_bytes > size * 4 // 3  # base64 of it all arrived
    figures = json.loads(done.stdout)
    assert figures["ok"]
    assert figures["peak_kib"] * 1024 < 4 * size  # the whole process, interpreter included


def test_send_many_streams_large_attachments_too(tmp_path: Path, capture: CaptureServer) -> None:
    from fivefold.mail import send_many

    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(STREAM_THRESHOLD + 12345))
    messages = [Message(sender="a@example.org", to=[f"u{i}@example.org"], subject=f"big {i}", text="x",
                        attachments=[Attachment.from_path(big)]) for i in range(3)]
    report = send_many(messages, server=capture.address, concurrency=2, timeout=30)
    assert report.sent == 3
    for parsed in capture.messages():
        [part] = list(parsed.iter_attachments())
        assert part.get_payload(decode=True) == big.read_bytes()
