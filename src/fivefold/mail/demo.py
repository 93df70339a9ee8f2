"""`fivefold demo` for mail: a capture server, one rich message, and what actually arrived."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from fivefold.mail.maildir import describe


def _png(width: int = 48, height: int = 16) -> bytes:
    """A small gradient PNG made in code, so the demo ships no binary files."""
    rows = b"".join(
        b"\x00" + b"".join(bytes((x * 5 % 256, 80 + y * 8, 200 - x * 3 % 200)) for x in range(width))
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def demo(out_dir: Path) -> dict[str, str]:
    from fivefold.mail import Attachment, Message, send
    from fivefold.mail.server import CaptureServer

    out_dir.mkdir(parents=True, exist_ok=True)
    maildir = out_dir / "Maildir"
    message = Message(
        sender="fivefold demo <demo@fivefold.example>",
        to=["Ann Analyst <ann@example.org>"],
        cc=["Zoë Ünïcode <zoe@example.org>"],
        bcc=["auditor@example.net"],
        subject="Weekly report — 週報 ✓",
        html=('<h1>Weekly report</h1><p>All <b>green</b>. Chart:</p><img src="cid:chart" alt="chart">'
              '<p>Details: <a href="https://example.org/r/42">report 42</a></p>'),
        inline=[Attachment("chart.png", data=_png(), cid="chart")],
        attachments=[Attachment("Résumé – 履歴書.txt", data="Ünïcode attachment body ✓\n".encode())],
    )
    with CaptureServer(maildir=maildir, tls="starttls", auth=("demo", "demo-password")) as server:
        result = send(message, server=server.address, security="starttls", cafile=server.cafile,
                      user="demo", password="demo-password", timeout=10)
        [received] = server.received()
        [raw] = server.raw()
        [parsed] = server.messages()
    eml = out_dir / "received.eml"
    eml.write_bytes(raw)
    info = describe(parsed)
    tree = ", ".join(p["type"] + (f" [{p['filename']}]" if p.get("filename") else "") for p in info["parts"])
    return {
        "server": f"aiosmtpd on {server.address} with STARTTLS (generated certificate) and AUTH",
        "accepted": ", ".join(result.accepted),
        "envelope recipients": ", ".join(received.rcpt_tos),
        "Bcc in the bytes on the wire": "yes (BUG)" if b"auditor@example.net" in raw else "no",
        "subject as received": str(parsed["Subject"]),
        "MIME structure": tree,
        "message": str(eml),
        "maildir": f"{maildir} (fivefold mail list --maildir {maildir})",
    }
