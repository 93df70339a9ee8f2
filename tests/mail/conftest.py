"""Real SMTP servers on 127.0.0.1 for the mail tests: the capture server and scripted handlers."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

import pytest

from fivefold.mail.server import CaptureServer, MaildirHandler

USER = "robot"
PASSWORD = "s3cr3t-Pa55-wörd"


class ScriptedHandler(MaildirHandler):
    """Replies to RCPT from a script (address -> list of replies, one per attempt) and can stall DATA."""

    def __init__(self, maildir: Path, *, rcpt: dict[str, list[str]] | None = None,
                 data_delay: float = 0.0, drop_every: int = 0,
                 mail: dict[str, str] | None = None) -> None:
        super().__init__(maildir)
        self.mail_script = dict(mail or {})
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
        if address in self.mail_script:
            return self.mail_script[address]
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


def send_argv(*extra: str, sender: str = "a@example.org", to: str = "b@example.org",
              subject: str = "s") -> list[str]:
    """``mail send`` arguments: one sender, one recipient, a subject, then ``extra``."""
    return ["mail", "send", "--from", sender, "--to", to, "--subject", subject, *extra]


def server_argv(server: CaptureServer, security: str, *, password_env: str | None = "MAIL_PW") -> list[str]:
    """Where and how to log in: the server, its TLS mode and certificate, the test user."""
    argv = ["--server", server.address, "--security", security, "--cafile", str(server.cafile),
            "--user", USER]
    return [*argv, "--password-env", password_env] if password_env else argv


class ThreadedTcpServer:
    """An asyncio TCP server on 127.0.0.1 in a thread of its own; subclasses define ``_client``."""

    def __init__(self) -> None:
        self.address = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            server = loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", 0))
            self.address = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
            ready.set()
            loop.run_forever()
            server.close()
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        assert ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)


class RawSink(ThreadedTcpServer):
    """A minimal SMTP sink that counts DATA bytes without parsing lines (for big transfers)."""

    def __init__(self) -> None:
        super().__init__()
        self.messages = 0
        self.data_bytes = 0

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 sink ready\r\n")
        while line := await reader.readline():
            verb = line[:4].upper()
            if verb == b"EHLO":
                writer.write(b"250-sink\r\n250-8BITMIME\r\n250 SIZE 500000000\r\n")
            elif verb == b"DATA":
                writer.write(b"354 go ahead\r\n")
                tail = b""
                while True:
                    chunk = await reader.read(1 << 16)
                    if not chunk:
                        return
                    self.data_bytes += len(chunk)
                    tail = (tail + chunk)[-5:]
                    if tail == b"\r\n.\r\n":
                        break
                self.messages += 1
                writer.write(b"250 ok\r\n")
            elif verb == b"QUIT":
                writer.write(b"221 bye\r\n")
                await writer.drain()
                break
            else:
                writer.write(b"250 ok\r\n")
            await writer.drain()
        writer.close()


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
