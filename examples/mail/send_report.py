"""Send a report with an attachment from Python, to the local capture server.

Run:  .venv/bin/python examples/mail/send_report.py
"""

from __future__ import annotations

from fivefold.mail import Attachment, Message, send
from fivefold.mail.server import CaptureServer

with CaptureServer() as server:  # a throwaway aiosmtpd on 127.0.0.1, ephemeral port
    message = Message(
        sender="Build bot <bot@example.org>",
        to=["Dev Team <dev@example.org>"],
        bcc=["archive@example.org"],  # envelope only: never in a header
        subject="Nightly build: 3 failures",
        html="<h1>Nightly build</h1><p>3 failures, see the attached log.</p>",
        attachments=[Attachment("build log – nightly.txt", data=b"FAILED test_a\nFAILED test_b\n")],
    )
    result = send(message, server=server.address, timeout=10)
    print("accepted:", result.accepted, "refused:", result.refused)
    [received] = server.messages()
    print("arrived:", received["Subject"], "with", [p.get_filename() for p in received.iter_attachments()])
