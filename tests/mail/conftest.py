"""Real SMTP servers on 127.0.0.1 for the mail tests: the capture server and scripted handlers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fivefold.mail.server import CaptureServer, MaildirHandler

USER = "robot"
PASSWORD = "s3cr3t-Pa55-wörd"


class ScriptedHandler(MaildirHandler):
    """Replies to RCPT from a script (address -> list of replies, one per attempt) and can stall DATA."""

    def __init__(self, maildir: Path, *, rcpt: dict[str, list[str]] | None = None,
                 data_delay: float = 0.0, drop_every: int = 0) -> None:
        super().__init__(maildir)
        self.rcpt_script = {k: list(v) for k, v in (rcpt or {}).items()}
        self.rcpt_attempts: dict[str, int] = {}
        self.data_delay = data_delay
        self.drop_every = drop_every
        self.mails = 0
        self.sessions: set[int] = set()

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str,
                          mail_options: list[str]) -> str | None:
        self.mails += 1
        self.sessions.add(id(session))
        if self.drop_every and self.mails % self.drop_every == 0:
            server.transport.close()  # the connection drops mid-transaction
            return None
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        self.rcpt_attempts[address] = self.rcpt_attempts.get(address, 0) + 1
        script = self.rcpt_script.get(address)
        if script:
            reply = script.pop(0) if len(script) > 1 else script[0]
            if not reply.startswith("250"):
                return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def capture(tmp_path: Path) -> Iterator[CaptureServer]:
    with CaptureServer(maildir=tmp_path / "Maildir") as server:
        yield server


@pytest.fixture
def tls_capture(tmp_path: Path) -> Iterator[CaptureServer]:
    """STARTTLS required, AUTH required; ``.cafile`` is the throwaway self-signed certificate."""
    with CaptureServer(maildir=tmp_path / "Maildir", tls="starttls", auth=(USER, PASSWORD)) as server:
        yield server


@pytest.fixture
def scripted(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Factory: ``scripted(rcpt={...}, data_delay=...)`` -> started CaptureServer."""
    servers: list[CaptureServer] = []

    def make(**kwargs: Any) -> CaptureServer:
        smtputf8 = kwargs.pop("smtputf8", True)
        handler = ScriptedHandler(tmp_path / f"Maildir{len(servers)}", **kwargs)
        server = CaptureServer(handler=handler, smtputf8=smtputf8).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()
