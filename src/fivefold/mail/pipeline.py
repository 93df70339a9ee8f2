"""Pipelined SMTP transactions (RFC 2920) for bulk sending.

aiosmtplib sends each command and waits for its reply: MAIL, RCPT, DATA and the message
body are four round trips, four ``send`` system calls and four wake-ups of the event loop
per message. On a server that advertises PIPELINING (Postfix, Exim, Sendmail, Exchange
all do) one write can carry MAIL, every RCPT and DATA, and the replies come back in
order: two round trips per message, whatever the number of recipients.

The connection itself (TLS or STARTTLS with certificate checks, EHLO, AUTH with secrets
that never reach a log) is still opened by :func:`fivefold.mail.transport.connect`; once
it is ready, :meth:`PipelinedSession.take_over` moves the transport to the small reply
reader below. Failures are classified exactly as :func:`fivefold.mail.transport.transact`
does: refusals are collected per recipient (4xx to retry, 5xx final) and a timeout or a
dropped connection raises a transient :class:`SendError`.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fivefold.mail.fastcompose import WireReady
from fivefold.mail.streaming import LEADING_DOT
from fivefold.mail.transport import Delivery, Endpoint, SendError, refuse_all

if TYPE_CHECKING:
    import aiosmtplib

    from fivefold.mail.streaming import StreamedMessage

log = logging.getLogger("fivefold.mail.pipeline")

_LINE_ENDS = re.compile(rb"\r\n|\r|\n")
_MAX_REPLY = 64 * 1024  # a reply longer than this is not SMTP
_CODES = {b"%d" % code: code for code in range(200, 600)}  # a dict lookup is cheaper than int()
_SINGLE_LINE_REPLIES = re.compile(rb"(?:[2-5][0-9][0-9] [^\r\n]*\r\n)+")


class _ReplyReader(asyncio.BufferedProtocol):
    """Splits the server's bytes into complete (code, text) replies, kept in arrival order.

    A buffered protocol: the transport reads into one buffer kept for the connection. With
    a plain ``Protocol`` asyncio allocates a fresh 256 KiB bytes object for every read,
    which on loopback cost as much CPU as the rest of the read.
    """

    def __init__(self, transport: asyncio.Transport) -> None:
        self.view = memoryview(bytearray(16 * 1024))
        self.transport = transport
        self.loop = asyncio.get_running_loop()
        self.buffer = bytearray()
        self.lines: list[bytes] = []
        self.replies: deque[tuple[int, str]] = deque()
        self.want = 0
        self.waiter: asyncio.Future[None] | None = None
        self.error: BaseException | None = None
        self.paused = False
        self.drained: asyncio.Future[None] | None = None
        # One watchdog timer per connection instead of a timer armed and cancelled for every
        # read (that pair cost more than parsing the replies): it fires at the deadline of the
        # read in progress, or finds none and lapses until the next read arms it again.
        self.deadline = 0.0
        self.watchdog: asyncio.TimerHandle | None = None

    # -- asyncio.BufferedProtocol --------------------------------------------------------------
    def get_buffer(self, sizehint: int) -> memoryview:
        return self.view

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(bytes(self.view[:nbytes]))

    def data_received(self, data: bytes) -> None:
        if not self.buffer and not self.lines and _SINGLE_LINE_REPLIES.fullmatch(data):
            # The usual chunk: whole one-line replies ("250 ok\r\n354 go ahead\r\n"), parsed
            # without the line-by-line checks of _parse (the pattern made them).
            self.replies.extend([(_CODES[line[:3]], line[4:].decode("utf-8", "replace"))
                                 for line in data[:-2].split(b"\r\n")])
        else:
            self._parse(data)
        waiter = self.waiter
        if waiter is not None and len(self.replies) >= self.want and not waiter.done():
            waiter.set_result(None)

    def _parse(self, data: bytes) -> None:
        if self.buffer:
            data = bytes(self.buffer) + data
            self.buffer.clear()
        end = data.rfind(b"\n")
        if end + 1 < len(data):  # an incomplete line stays for the next call
            self.buffer += data[end + 1:]
            if len(self.buffer) > _MAX_REPLY:
                self._fail(ConnectionError("reply line too long"))
                return
        if end < 0:
            return
        append = self.replies.append
        for line in data[:end].split(b"\n"):
            code = _CODES.get(line[:3])
            if code is None:
                if not line[:3].isdigit() or len(line) < 3:
                    self._fail(ConnectionError(f"malformed reply {line[:40]!r}"))
                    return
                code = int(line[:3])
            text = line[4:-1] if line.endswith(b"\r") else line[4:]
            if line[3:4] == b"-":  # "250-text": the reply goes on
                self.lines.append(text)
            elif self.lines:  # "250 text" or a bare "250" ends it
                self.lines.append(text)
                append((code, b"\n".join(self.lines).decode("utf-8", "replace")))
                self.lines = []
            else:
                append((code, text.decode("utf-8", "replace")))

    def connection_lost(self, exc: Exception | None) -> None:
        self.error = self.error or exc or ConnectionResetError("connection closed by the server")
        self.stop_watching()
        self._wake()

    def eof_received(self) -> bool:
        self.error = self.error or ConnectionResetError("connection closed by the server")
        self._wake()
        return False

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)

    # -- reading and flow control ------------------------------------------------------------
    def _fail(self, exc: BaseException) -> None:
        self.error = exc
        self.transport.abort()
        self._wake()

    def _wake(self) -> None:
        for future in (self.waiter, self.drained):
            if future is not None and not future.done():
                future.set_exception(self.error or ConnectionResetError("connection lost"))

    async def read(self, count: int, timeout: float) -> list[tuple[int, str]]:
        """The next ``count`` replies; raises TimeoutError or ConnectionError."""
        waiter = self.expect(count, timeout)
        if waiter is not None:
            await waiter
        return self.take(count)

    def expect(self, count: int, timeout: float) -> asyncio.Future[None] | None:
        """``None`` when ``count`` replies are in, else a future done when they are (or with
        TimeoutError, ConnectionError): awaited directly, it spares a coroutine per read."""
        if len(self.replies) >= count:
            return None
        if self.error is not None:
            raise self.error
        self.want = count
        self.waiter = waiter = self.loop.create_future()
        self.deadline = self.loop.time() + timeout
        if self.watchdog is None or self.deadline < self.watchdog.when():
            self.stop_watching()  # a shorter timeout than the armed one (QUIT's)
            self.watchdog = self.loop.call_at(self.deadline, self._watch)
        return waiter

    def take(self, count: int) -> list[tuple[int, str]]:
        replies = self.replies
        if len(replies) == count:  # the usual case: everything that came was asked for
            out = list(replies)
            replies.clear()
            return out
        pop = replies.popleft
        return [pop() for _ in range(count)]

    def _watch(self) -> None:
        waiter = self.waiter
        if waiter is None or waiter.done():
            self.watchdog = None  # no read in progress: the next one arms it again
        elif self.loop.time() >= self.deadline:
            self.watchdog = None
            waiter.set_exception(TimeoutError())
        else:  # a later read moved the deadline on
            self.watchdog = self.loop.call_at(self.deadline, self._watch)

    def stop_watching(self) -> None:
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None

    async def drain(self, timeout: float) -> None:
        if not self.paused:
            return
        if self.error is not None:
            raise self.error
        self.drained = drained = self.loop.create_future()
        timer = self.loop.call_later(timeout, _expire, drained)
        try:
            await drained
        finally:
            timer.cancel()
            self.drained = None


def _expire(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


def wire_body(data: bytes) -> bytes:
    """``data`` as DATA content: CRLF line ends, dot-stuffed, ending in CRLF, then ``.CRLF``.

    The composers already produce CRLF and few lines start with a dot, so the common case is
    a few C-speed scans and one concatenation, and for a skeleton's fill (:class:`WireReady`)
    the concatenation alone.
    """
    if type(data) is WireReady:
        return data + b".\r\n"
    if data.count(b"\n") != data.count(b"\r\n") or data.count(b"\r") != data.count(b"\r\n"):
        data = _LINE_ENDS.sub(b"\r\n", data)
    if data.startswith(b".") or b"\n." in data:
        data = LEADING_DOT.sub(b"..", data)
    if data and not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


class PipelinedSession:
    """One connection that sends whole envelopes per write; see the module docstring."""

    def __init__(self, transport: asyncio.Transport, extensions: set[str], endpoint: Endpoint) -> None:
        self.transport = transport
        self.extensions = extensions
        self.endpoint = endpoint
        self.reader = _ReplyReader(transport)
        self.needs_rset = False
        transport.set_protocol(self.reader)
        # The MAIL parameters the server's extensions call for, but SIZE's value.
        self._body_8bit = b" BODY=8BITMIME" if "8bitmime" in extensions else b""
        self._size = b" SIZE=%d" if "size" in extensions else b""
        self._mail: dict[tuple[str, bool], bytes] = {}

    @classmethod
    def take_over(cls, client: aiosmtplib.SMTP, endpoint: Endpoint) -> PipelinedSession | None:
        """The ready connection of ``client`` as a pipelined session, if the server offers it.

        ``None`` (and ``client`` untouched) when the server does not advertise PIPELINING.
        """
        transport = getattr(client, "transport", None)  # aiosmtplib's; absent -> the plain path
        if not client.supports_extension("pipelining") or not isinstance(transport, asyncio.Transport):
            return None
        if transport.is_closing():
            return None
        extensions = {name.lower() for name in client.esmtp_extensions}
        log.debug("%s offers PIPELINING: MAIL, RCPT and DATA go in one write", endpoint)
        return cls(transport, extensions, endpoint)

    @property
    def is_connected(self) -> bool:
        return self.reader.error is None and not self.transport.is_closing()

    def envelope(self, sender: str, recipients: list[str], size: int, smtputf8: bool) -> bytes:
        """MAIL, the RCPTs and DATA (after RSET when the last transaction did not end cleanly)."""
        mail = self._mail.get((sender, smtputf8))
        if mail is None:  # a batch usually has one sender: its MAIL line is made once
            if smtputf8 and "smtputf8" not in self.extensions:
                raise SendError(f"{self.endpoint}: a non-ASCII address needs SMTPUTF8, which the server "
                                "does not offer", transient=False)
            mail = b"MAIL FROM:<" + sender.encode("utf-8" if smtputf8 else "ascii") + b">" \
                + (b" SMTPUTF8" if smtputf8 else b"") + self._body_8bit
            self._mail[(sender, smtputf8)] = mail
        encoding = "utf-8" if smtputf8 else "ascii"
        commands = (b"RSET\r\n" + mail if self.needs_rset else mail) \
            + (self._size % size if self._size else b"") + b"\r\n"
        if recipients:
            rcpts = [rcpt.encode(encoding) for rcpt in recipients]
            commands += b"RCPT TO:<" + b">\r\nRCPT TO:<".join(rcpts) + b">\r\n"
        commands += b"DATA\r\n"
        self.needs_rset = True  # until this transaction ends with the body's reply
        return commands

    async def exchange(self, body: bytes | None, sender: str | None, recipients: list[str], size: int, *,
                       smtputf8: bool, timeout: float) -> tuple[tuple[int, str] | None, Opened | None]:
        """One write: the wire body of the open transaction (if any), then a new envelope (if
        ``sender``). Returns the body's reply and what the server said to the envelope.

        Raises :class:`SendError` (transient) on a timeout or a dropped connection, after
        closing the connection: the server then discards any transaction it had open.
        """
        if body is not None:
            self.needs_rset = False  # the body's final dot ends the transaction, whatever the reply
        commands = self.envelope(sender, recipients, size, smtputf8) if sender is not None else b""
        body_reply: tuple[int, str] | None = None
        rset = commands.startswith(b"RSET")
        count = (1 if body is not None else 0) + (len(recipients) + 2 + rset if sender is not None else 0)
        try:
            self.transport.write(body + commands if body is not None else commands)
            waiter = self.reader.expect(count, timeout)
            if waiter is not None:
                await waiter
            replies = self.reader.take(count)
            body_reply = replies[0] if body is not None else None
            if body_reply is not None and body_reply[0] == 250:
                self.needs_rset = sender is not None
            opened = None
            if sender is not None:
                opened = self._opened(sender, recipients, replies[count - len(recipients) - 2:])
                if opened.nobody_at_354:
                    # The server opened DATA with nobody to deliver to: end it with an empty body.
                    self.transport.write(b".\r\n")
                    await self.reader.read(1, timeout)
        except TimeoutError:
            self.abort()
            raise Dropped(f"{self.endpoint}: no reply within {timeout:g} s during the transaction",
                          body_reply or self._salvage(body)) from None
        except (ConnectionError, OSError) as exc:
            self.abort()
            raise Dropped(f"{self.endpoint}: connection dropped: {exc}",
                          body_reply or self._salvage(body)) from None
        return body_reply, opened

    def _salvage(self, body: bytes | None) -> tuple[int, str] | None:
        """The body's reply if it came before the drop (a server that closes after a message
        still answers it first): that message was delivered and must not be sent again."""
        if body is not None and self.reader.replies:
            return self.reader.replies.popleft()
        return None

    def _opened(self, sender: str, recipients: list[str], replies: list[tuple[int, str]]) -> Opened:
        if len(replies) == 3 and replies[0][0] == 250 and replies[1][0] in (250, 251) \
                and replies[2][0] == 354:  # one recipient, accepted
            return Opened(Delivery(accepted=[recipients[0]]), True, None, False)
        (mail_code, mail_text), (data_code, data_text) = replies[0], replies[-1]
        delivery = Delivery()
        if mail_code != 250:
            error = SendError(f"{self.endpoint}: sender {sender} refused: {mail_code} {mail_text}",
                              transient=400 <= mail_code < 500, code=mail_code)
            return Opened(delivery, False, error, data_code == 354)
        for rcpt, (code, text) in zip(recipients, replies[1:-1], strict=True):
            if code in (250, 251):
                delivery.accepted.append(rcpt)
            else:
                refusal = f"{code} {text}"
                (delivery.retry if 400 <= code < 500 else delivery.refused)[rcpt] = refusal
                log.info("%s: recipient %s refused: %s", self.endpoint, rcpt, refusal)
        if not delivery.accepted:
            return Opened(delivery, False, None, data_code == 354)
        if data_code != 354:
            refuse_all(delivery, data_code, data_text)
            return Opened(delivery, False, None, False)
        return Opened(delivery, True, None, False)

    async def transact(self, sender: str, recipients: list[str], data: bytes | StreamedMessage, *,
                       smtputf8: bool, timeout: float) -> Delivery:
        """MAIL + RCPTs + DATA in one write, then the body; same contract as ``transport.transact``."""
        size = len(data) if isinstance(data, bytes) else data.size
        _, opened = await self.exchange(None, sender, recipients, size, smtputf8=smtputf8, timeout=timeout)
        assert opened is not None
        if opened.error is not None:
            raise opened.error
        if not opened.ready:
            return opened.delivery
        if isinstance(data, bytes):
            reply, _ = await self.exchange(wire_body(data), None, [], 0, smtputf8=False, timeout=timeout)
            assert reply is not None
        else:
            try:
                await self._write_body(data, timeout)
                reply = (await self.reader.read(1, timeout))[0]
            except TimeoutError:
                self.abort()
                raise SendError(f"{self.endpoint}: no reply within {timeout:g} s during the transaction",
                                transient=True) from None
            except (ConnectionError, OSError) as exc:
                self.abort()
                raise SendError(f"{self.endpoint}: connection dropped: {exc}", transient=True) from None
            if reply[0] == 250:
                self.needs_rset = False
        finish(opened.delivery, reply)
        return opened.delivery

    async def _write_body(self, data: bytes | StreamedMessage, timeout: float) -> None:
        if isinstance(data, bytes):
            self.transport.write(wire_body(data))
            return
        # Streamed: chunks are already dot-stuffed CRLF; write with flow control.
        for chunk in data.chunks():
            self.transport.write(chunk)
            await self.reader.drain(timeout)
        self.transport.write(b".\r\n")

    def abort(self) -> None:
        self.transport.abort()

    async def close(self) -> None:
        """QUIT politely (briefly), then close whatever state the connection is in."""
        if self.is_connected:
            try:
                self.transport.write(b"QUIT\r\n")
                await self.reader.read(1, 5.0)
            except (TimeoutError, ConnectionError, OSError):
                pass
        self.transport.close()


class Dropped(SendError):
    """A timeout or dropped connection; ``body_reply`` is the reply to the body written in the
    same exchange when it arrived before the drop."""

    def __init__(self, message: str, body_reply: tuple[int, str] | None) -> None:
        super().__init__(message, transient=True)
        self.body_reply = body_reply


@dataclass(slots=True)
class Opened:
    """The server's answer to an envelope: ``ready`` when DATA said 354 to someone accepted."""

    delivery: Delivery
    ready: bool
    error: SendError | None  # the sender was refused
    nobody_at_354: bool


def finish(delivery: Delivery, reply: tuple[int, str]) -> None:
    """The reply to the body: 250 delivers to the accepted recipients, anything else refuses them."""
    code, text = reply
    if code == 250:
        delivery.reply = f"{code} {text}"
    else:
        refuse_all(delivery, code, text)
