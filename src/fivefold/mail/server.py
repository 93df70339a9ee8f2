"""The embedded capture server: aiosmtpd on 127.0.0.1, every message into a Maildir.

``CaptureServer`` runs its own event loop in a daemon thread, so synchronous code (tests of
other tools, the demo, ``fivefold mail serve``) can use it as a context manager::

    with CaptureServer() as server:           # ephemeral port on 127.0.0.1
        send(msg, server=f"127.0.0.1:{server.port}")
        [received] = server.messages()

The raw bytes are stored exactly as they arrived (so tests can check that no Bcc header went
over the wire); the SMTP envelope, which is the only place Bcc recipients appear, goes to
``envelopes.jsonl`` beside the Maildir's ``cur``/``new``/``tmp``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import email
import email.policy
import json
import logging
import mailbox
import ssl
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from fivefold._common.errors import FivefoldError

TlsMode = Literal["starttls", "tls"]
ENVELOPES = "envelopes.jsonl"
# aiosmtpd's default is 32 MiB, less than a 25 MB attachment after base64.
DATA_SIZE_LIMIT = 128 * 1024 * 1024


@dataclass(frozen=True)
class Received:
    """One message as the server took it: Maildir key, envelope and size."""

    key: str
    mail_from: str
    rcpt_tos: tuple[str, ...]
    size: int
    subject: str

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "mail_from": self.mail_from, "rcpt_tos": list(self.rcpt_tos),
                "size": self.size, "subject": self.subject}


class MaildirHandler:
    """aiosmtpd handler that delivers into a Maildir; subclass it to script replies in tests."""

    def __init__(self, maildir: Path, *, auth: tuple[str, str] | None = None,
                 on_message: Callable[[Received], None] | None = None) -> None:
        self.maildir = maildir
        # mailbox.Maildir(create=True) skips an existing directory (e.g. one holding tls/ already).
        for sub in ("tmp", "new", "cur"):
            (maildir / sub).mkdir(parents=True, exist_ok=True)
        self.box = mailbox.Maildir(maildir, create=True)
        self.auth = auth
        self.on_message = on_message
        self.pipelining = True
        self.received: list[Received] = []
        self._lock = threading.Lock()

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str,
                     auth_data: Any) -> Any:
        from aiosmtpd.smtp import AuthResult, LoginPassword

        ok = (
            self.auth is not None
            and isinstance(auth_data, LoginPassword)
            and auth_data.login.decode("utf-8", "replace") == self.auth[0]
            and auth_data.password.decode("utf-8", "replace") == self.auth[1]
        )
        return AuthResult(success=ok, handled=False)

    async def auth_XOAUTH2(self, server: Any, args: list[str]) -> Any:
        """RFC-less but ubiquitous (Gmail, Outlook): ``user=U^Aauth=Bearer TOKEN^A^A``."""
        from aiosmtpd.smtp import AuthResult

        if len(args) < 2:
            return AuthResult(success=False, handled=False)
        try:
            decoded = base64.b64decode(args[1], validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return AuthResult(success=False, handled=False)
        fields = dict(part.split("=", 1) for part in decoded.split("\x01") if "=" in part)
        ok = (self.auth is not None and fields.get("user") == self.auth[0]
              and fields.get("auth") == f"Bearer {self.auth[1]}")
        return AuthResult(success=ok, handled=False)

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        """Advertises PIPELINING (RFC 2920) like Postfix and Exim: aiosmtpd reads commands one
        at a time from its stream, so commands sent together are answered in order anyway."""
        session.host_name = hostname
        if self.pipelining:
            responses.insert(1, "250-PIPELINING")
        return responses

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw: bytes = envelope.original_content or b""
        with self._lock:
            key = self.box.add(raw)
            parsed = email.message_from_bytes(raw[: 64 * 1024].split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n",
                                              policy=email.policy.default)
            item = Received(key=key, mail_from=envelope.mail_from or "",
                            rcpt_tos=tuple(envelope.rcpt_tos), size=len(raw),
                            subject=str(parsed.get("Subject", "")))
            self.received.append(item)
            with (self.maildir / ENVELOPES).open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(item.to_dict(), ensure_ascii=False) + "\n")
        if self.on_message is not None:
            self.on_message(item)
        return f"250 2.0.0 OK queued as {key}"


class DiscardHandler(MaildirHandler):
    """Accepts and counts messages without storing them: a sink for load tests and benchmarks."""

    def __init__(self, *, on_message: Callable[[Received], None] | None = None) -> None:
        self.maildir = Path(tempfile.gettempdir())
        self.auth = None
        self.on_message = on_message
        self.received = []
        self._lock = threading.Lock()
        self.count = 0
        self.bytes = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.count += 1
        self.bytes += len(envelope.original_content or b"")
        return "250 2.0.0 OK discarded"


class _QuietDeprecation(logging.Filter):
    """Drops two aiosmtpd warnings that are noise here.

    One is about aiosmtpd's own use of ``Session.login_data`` on every AUTH; the other says
    AUTH does not require TLS, which under implicit TLS is already on from the first byte.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return "login_data is deprecated" not in text and "auth_require_tls == False" not in text


_QUIET = _QuietDeprecation()


def server_tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


class CaptureServer:
    """A local SMTP server that captures messages; start/stop or use ``with``.

    ``tls``: ``None`` (plain, STARTTLS still offered when a certificate is available and
    ``starttls`` is asked), ``"starttls"`` (STARTTLS offered and required before MAIL) or
    ``"tls"`` (implicit TLS from the first byte). ``auth=(user, password)`` requires AUTH.
    ``cafile`` is the generated certificate, for clients that verify it. ``pipelining=False``
    stops advertising PIPELINING (RFC 2920), as an old server would.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        maildir: Path | None = None,
        tls: TlsMode | None = None,
        auth: tuple[str, str] | None = None,
        smtputf8: bool = True,
        cert: tuple[Path, Path] | None = None,
        handler: MaildirHandler | None = None,
        on_message: Callable[[Received], None] | None = None,
        auth_require_tls: bool = True,
        timeout: float = 60.0,
        pipelining: bool = True,
    ) -> None:
        self.host = host
        self.requested_port = port
        self.port = 0
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if maildir is None and handler is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="fivefold-capture-")
            maildir = Path(self._tmp.name) / "Maildir"
        self.handler = handler or MaildirHandler(maildir or Path("."), auth=auth, on_message=on_message)
        if auth is not None:
            self.handler.auth = auth
        self.handler.pipelining = pipelining
        self.maildir = self.handler.maildir
        self.tls = tls
        self.auth = auth
        self.smtputf8 = smtputf8
        self.auth_require_tls = auth_require_tls
        self.timeout = timeout
        self.cafile: Path | None = None
        self._cert = cert
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> CaptureServer:
        aiosmtpd_log = logging.getLogger("mail.log")
        if _QUIET not in aiosmtpd_log.filters:
            aiosmtpd_log.addFilter(_QUIET)
        context = self._tls_context()
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                self._server = loop.run_until_complete(self._serve(context))
                sock = self._server.sockets[0]
                self.port = int(sock.getsockname()[1])
            except BaseException as exc:  # reported to the starting thread below
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name="fivefold-capture-server", daemon=True)
        self._thread.start()
        if not ready.wait(30):
            raise FivefoldError(f"capture server on {self.host}:{self.requested_port} did not start")
        if failure:
            exc = failure[0]
            detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise FivefoldError(f"cannot listen on {self.host}:{self.requested_port}: {detail}") from exc
        return self

    def stop(self) -> None:
        loop, server, thread = self._loop, self._server, self._thread
        if loop is not None and server is not None and thread is not None and thread.is_alive():
            async def close() -> None:
                server.close()
                # Connections still open would keep wait_closed() waiting; bounded on purpose.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(server.wait_closed(), 2.0)

            future = asyncio.run_coroutine_threadsafe(close(), loop)
            # Stopping must not raise over whatever error the caller is already handling.
            with contextlib.suppress(Exception):
                future.result(5)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(5)
        self._server = None
        self._thread = None

    def cleanup(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> CaptureServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
        self.cleanup()

    # -- reading back ----------------------------------------------------------------------
    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def received(self) -> list[Received]:
        """Envelopes of the messages received so far, in arrival order."""
        with self.handler._lock:
            return list(self.handler.received)

    def raw(self) -> list[bytes]:
        """The bytes of each received message exactly as sent, in arrival order."""
        return [self._read(item.key) for item in self.received()]

    def messages(self) -> list[EmailMessage]:
        """Each received message parsed with the modern ``email.policy.default``."""
        out: list[EmailMessage] = []
        for data in self.raw():
            parsed = email.message_from_bytes(data, policy=email.policy.default)
            assert isinstance(parsed, EmailMessage)
            out.append(parsed)
        return out

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Blocks until at least ``count`` messages arrived (or ``timeout`` passes)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            items = self.received()
            if len(items) >= count:
                return items
            time.sleep(0.02)
        return self.received()

    def _read(self, key: str) -> bytes:
        for sub in ("new", "cur"):
            for path in (self.maildir / sub).glob(f"{key}*"):
                return path.read_bytes()
        raise FivefoldError(f"{self.maildir}: message {key} vanished")

    # -- internals -------------------------------------------------------------------------
    def _tls_context(self) -> ssl.SSLContext | None:
        if self.tls is None:
            return None
        if self._cert is None:
            from fivefold.mail.certs import make_self_signed

            if self._tmp is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="fivefold-capture-")
            self._cert = make_self_signed(Path(self._tmp.name) / "tls")
        self.cafile = self._cert[0]
        return server_tls_context(*self._cert)

    async def _serve(self, context: ssl.SSLContext | None) -> asyncio.base_events.Server:
        from aiosmtpd.smtp import SMTP

        handler = self.handler
        auth_kwargs: dict[str, Any] = {}
        if self.auth is not None:
            auth_kwargs = {"authenticator": handler.authenticate, "auth_required": True,
                           "auth_require_tls": self.auth_require_tls and self.tls != "tls"}
            # aiosmtpd only knows TLS it negotiated itself (STARTTLS); implicit TLS is already on.

        def factory() -> SMTP:
            with warnings.catch_warnings():
                # "AUTH without TLS" is a false alarm under implicit TLS (see auth_require_tls above).
                warnings.simplefilter("ignore", UserWarning)
                return make()

        def make() -> SMTP:
            return SMTP(
                handler,
                hostname="fivefold-capture",
                data_size_limit=DATA_SIZE_LIMIT,
                enable_SMTPUTF8=self.smtputf8,
                tls_context=context if self.tls == "starttls" else None,
                require_starttls=self.tls == "starttls",
                timeout=self.timeout,
                **auth_kwargs,
            )

        loop = asyncio.get_running_loop()
        return await loop.create_server(
            factory, host=self.host, port=self.requested_port,
            ssl=context if self.tls == "tls" else None,
        )
