"""One SMTP connection: TLS mode, certificate checks, AUTH, timeouts, failure classes.

Every failure leaves here as a :class:`SendError` whose ``transient`` flag says whether a
retry may help (4xx replies, dropped connections, timeouts, a server that is down) or not
(5xx replies, an untrusted certificate, refused credentials). Messages never contain a
password or token: they name the server, the user and the reply only.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from fivefold._common.errors import FivefoldError, UsageError

if TYPE_CHECKING:
    import aiosmtplib

    from fivefold.mail.streaming import StreamedMessage

log = logging.getLogger("fivefold.mail.transport")

Security = Literal["tls", "starttls", "none"]
SECURITY_CHOICES: tuple[Security, ...] = ("tls", "starttls", "none")
LOCAL_HOSTS = {"127.0.0.1", "::1", "localhost"}


class SendError(FivefoldError):
    """Sending failed; ``transient`` tells whether a later retry may succeed."""

    def __init__(self, message: str, *, transient: bool, code: int | None = None) -> None:
        super().__init__(message)
        self.transient = transient
        self.code = code


class Secret:
    """A password or token that never shows in ``repr``, logs or tracebacks' locals."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    security: Security

    @classmethod
    def parse(cls, server: str, security: str | None = None) -> Endpoint:
        """``host:port`` (or ``[v6]:port``, or ``host`` for port 25) plus the TLS mode.

        ``security=None`` picks from the port: 465 implicit TLS, 587 STARTTLS, else none.
        """
        match = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?|([^:\s]+)(?::(\d+))?", server.strip())
        if match is None:
            raise UsageError(f"--server: expected host:port, got {server!r}")
        host = match.group(1) or match.group(3)
        port = int(match.group(2) or match.group(4) or 25)
        if not 0 < port < 65536:
            raise UsageError(f"--server: port out of range in {server!r}")
        if security is None:
            mode: Security = "tls" if port == 465 else "starttls" if port == 587 else "none"
        elif security in SECURITY_CHOICES:
            mode = security  # type: ignore[assignment]
        else:
            raise UsageError(f"--security: expected tls, starttls or none, got {security!r}")
        return cls(host, port, mode)

    @property
    def is_local(self) -> bool:
        return self.host in LOCAL_HOSTS or self.host.startswith("127.")

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass
class ConnectOptions:
    """How to reach and log in to a server (shared by ``send`` and ``send_many``)."""

    timeout: float = 30.0
    cafile: Path | None = None
    insecure: bool = False
    allow_plain: bool = False
    user: str | None = None
    password: Secret | None = None
    oauth_token: Secret | None = None
    local_hostname: str | None = None
    warned: list[str] = field(default_factory=list)

    def check(self, endpoint: Endpoint) -> None:
        if self.timeout <= 0:
            raise UsageError("--timeout must be positive")
        if self.cafile is not None and not self.cafile.is_file():
            raise UsageError(f"--cafile {self.cafile}: no such file")
        if endpoint.security == "none" and not endpoint.is_local and not self.allow_plain:
            raise UsageError(
                f"{endpoint}: refusing an unencrypted connection to a remote server; "
                "use --security starttls/tls, or --allow-plain if you really mean it"
            )
        if (self.password is not None or self.oauth_token is not None) and self.user is None:
            raise UsageError("a password or token was given without --user")


def tls_context(options: ConnectOptions) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(options.cafile) if options.cafile else None)
    if options.insecure:
        # Loud, every time: this is never the default and should never become a habit.
        log.warning("--insecure: the server's certificate and host name are NOT verified")
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


_HOSTNAME: list[str] = []


def local_hostname() -> str:
    # socket.getfqdn() can block on DNS for seconds; the short host name is fine for EHLO.
    if not _HOSTNAME:
        name = socket.gethostname() or "localhost"
        _HOSTNAME.append(name if name.isascii() and "_" not in name else "localhost")
    return _HOSTNAME[0]


async def connect(endpoint: Endpoint, options: ConnectOptions) -> aiosmtplib.SMTP:
    """An open, greeted, TLS-protected (as asked) and authenticated connection."""
    import aiosmtplib

    context = tls_context(options) if endpoint.security != "none" else None
    client = aiosmtplib.SMTP(
        hostname=endpoint.host,
        port=endpoint.port,
        timeout=options.timeout,
        use_tls=endpoint.security == "tls",
        start_tls=endpoint.security == "starttls" if endpoint.security != "none" else False,
        tls_context=context,
        local_hostname=options.local_hostname or local_hostname(),
    )
    log.debug("connecting to %s (security=%s, timeout=%ss)", endpoint, endpoint.security, options.timeout)
    try:
        await client.connect()
        if client.is_ehlo_or_helo_needed:
            # Extensions (SMTPUTF8, SIZE, 8BITMIME) must be known before the first MAIL.
            await client.ehlo()
    except BaseException as exc:
        client.close()
        raise classify_connect(exc, endpoint, options) from None
    try:
        if options.user is not None and options.oauth_token is not None:
            await client.auth_xoauth2(options.user, options.oauth_token.reveal())
        elif options.user is not None and options.password is not None:
            await client.login(options.user, options.password.reveal())
    except BaseException as exc:
        client.close()
        raise classify_auth(exc, endpoint, options) from None
    log.debug("connected to %s", endpoint)
    return client


def classify_connect(exc: BaseException, endpoint: Endpoint, options: ConnectOptions) -> BaseException:
    import aiosmtplib

    if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt):
        return exc
    cause = exc.__cause__ or exc.__context__
    for err in (exc, cause):
        if isinstance(err, ssl.SSLCertVerificationError):
            return SendError(
                f"{endpoint}: TLS certificate not trusted ({err.verify_message}); "
                "pass --cafile with the server's CA, or --insecure to skip verification",
                transient=False,
            )
        if isinstance(err, ssl.SSLError):
            hint = " (is the port plain SMTP? try --security starttls or none)" \
                if endpoint.security == "tls" else ""
            return SendError(f"{endpoint}: TLS handshake failed: {err.reason or err}{hint}", transient=False)
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError):
        hint = (" (is it an implicit-TLS port such as 465? try --security tls)"
                if endpoint.security != "tls" else "")
        return SendError(f"{endpoint}: no SMTP greeting within {options.timeout:g} s{hint}", transient=True)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return SendError(f"{endpoint}: server refused the session: {exc.code} {exc.message}",
                         transient=400 <= exc.code < 500, code=exc.code)
    if isinstance(exc, aiosmtplib.SMTPException) and "STARTTLS" in str(exc):
        return SendError(f"{endpoint}: server does not offer STARTTLS; use --security tls or none",
                         transient=False)
    if isinstance(exc, aiosmtplib.SMTPConnectError | ConnectionError | OSError):
        detail = getattr(cause, "strerror", None) or str(exc)
        return SendError(f"{endpoint}: cannot connect: {detail}", transient=True)
    if isinstance(exc, aiosmtplib.SMTPException):
        return SendError(f"{endpoint}: {exc}", transient=True)
    return exc


def classify_auth(exc: BaseException, endpoint: Endpoint, options: ConnectOptions) -> BaseException:
    import aiosmtplib

    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        # The reply text is the server's; the blob we sent never appears in it.
        return SendError(f"{endpoint}: authentication refused for user {options.user!r}: "
                         f"{exc.code} {exc.message}", transient=400 <= exc.code < 500, code=exc.code)
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError):
        return SendError(f"{endpoint}: no reply to AUTH within {options.timeout:g} s", transient=True)
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected | ConnectionError):
        return SendError(f"{endpoint}: connection dropped during AUTH", transient=True)
    if isinstance(exc, aiosmtplib.SMTPException):
        return SendError(f"{endpoint}: cannot authenticate: {exc}", transient=False)
    return exc


@dataclass(slots=True)
class Delivery:
    """What one transaction did: accepted recipients, refusals, and those worth retrying."""

    accepted: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    retry: dict[str, str] = field(default_factory=dict)
    reply: str = ""


async def transact(client: aiosmtplib.SMTP, endpoint: Endpoint, sender: str, recipients: list[str],
                   data: bytes | StreamedMessage, *, smtputf8: bool, timeout: float) -> Delivery:
    """MAIL, RCPT per recipient, DATA; recipient refusals are collected, not raised.

    Raises :class:`SendError` for the sender refused, DATA refused, timeouts and drops.
    """
    import aiosmtplib

    options: list[str] = []
    if smtputf8:
        if not client.supports_extension("smtputf8"):
            raise SendError(f"{endpoint}: a non-ASCII address needs SMTPUTF8, which the server does "
                            "not offer", transient=False)
        options.append("SMTPUTF8")
    if client.supports_extension("8bitmime"):
        options.append("BODY=8BITMIME")
    if client.supports_extension("size"):
        options.append(f"SIZE={len(data) if isinstance(data, bytes) else data.size}")
    encoding = "utf-8" if smtputf8 else "ascii"
    result = Delivery()
    # MAIL and RCPT go through execute_command: the addresses were validated when the message
    # was checked, and aiosmtplib's mail()/rcpt() would re-parse each one with parseaddr.
    option_bytes = [option.encode("ascii") for option in options]
    try:
        reply = await client.execute_command(b"MAIL", b"FROM:<" + sender.encode(encoding) + b">",
                                             *option_bytes, timeout=timeout)
        if reply.code != 250:
            await _reset(client)
            raise SendError(f"{endpoint}: sender {sender} refused: {reply.code} {reply.message}",
                            transient=400 <= reply.code < 500, code=reply.code)
        for rcpt in recipients:
            reply = await client.execute_command(b"RCPT", b"TO:<" + rcpt.encode(encoding) + b">",
                                                 timeout=timeout)
            if reply.code in (250, 251):
                result.accepted.append(rcpt)
            else:
                text = f"{reply.code} {reply.message}"
                (result.retry if 400 <= reply.code < 500 else result.refused)[rcpt] = text
                log.info("%s: recipient %s refused: %s", endpoint, rcpt, text)
        if not result.accepted:
            await _reset(client)
            return result
        try:
            if isinstance(data, bytes):
                response = await client.data(data, timeout=timeout)
            else:
                response = await stream_data(client, data, timeout)
            result.reply = f"{response.code} {response.message}"
        except aiosmtplib.SMTPDataError as exc:
            await _reset(client)
            refuse_all(result, exc.code, exc.message)
        return result
    except aiosmtplib.SMTPTimeoutError:
        client.close()
        raise SendError(f"{endpoint}: no reply within {timeout:g} s during the transaction",
                        transient=True) from None
    except (aiosmtplib.SMTPServerDisconnected, ConnectionError) as exc:
        client.close()
        raise SendError(f"{endpoint}: connection dropped: {exc}", transient=True) from None
    except aiosmtplib.SMTPResponseException as exc:
        await _reset(client)
        raise SendError(f"{endpoint}: {exc.code} {exc.message}", transient=400 <= exc.code < 500,
                        code=exc.code) from None


def refuse_all(result: Delivery, code: int, text: str) -> None:
    """The message was refused after RCPT: every accepted recipient moves to retry or refused."""
    refusal = f"{code} {text}"
    target = result.retry if 400 <= code < 500 else result.refused
    for rcpt in result.accepted:
        target[rcpt] = refusal
    result.accepted = []


async def stream_data(client: aiosmtplib.SMTP, message: StreamedMessage, timeout: float) -> Any:
    """DATA written block by block with flow control, for messages too big to hold twice.

    aiosmtplib's own ``data()`` takes the whole message as one bytes object (and copies it
    three times while normalising it), so this writes through its protocol object instead.
    """
    import aiosmtplib

    response = await client.execute_command(b"DATA", timeout=timeout)
    if response.code != 354:
        raise aiosmtplib.SMTPDataError(response.code, response.message)
    protocol = client.protocol
    transport = client.transport
    if protocol is None or not isinstance(transport, asyncio.WriteTransport):
        raise aiosmtplib.SMTPServerDisconnected("Connection lost")
    drain = getattr(protocol, "_drain_helper", None)
    for chunk in message.chunks():
        protocol.write(chunk)
        if drain is not None:
            await asyncio.wait_for(drain(), timeout)
        else:  # same effect through the transport's public API, if the helper ever goes away
            while transport.get_write_buffer_size() > 1 << 20:
                await asyncio.sleep(0.001)
    protocol.write(b".\r\n")
    # No await between the write above and this call: the reply cannot arrive unclaimed.
    reply = await protocol.read_response(timeout=timeout)
    if reply.code != 250:
        raise aiosmtplib.SMTPDataError(reply.code, reply.message)
    return reply


async def _reset(client: aiosmtplib.SMTP) -> None:
    """RSET after an aborted transaction so the connection can carry the next message."""
    import aiosmtplib

    if client.is_connected:
        try:
            await client.rset()
        except aiosmtplib.SMTPException:
            client.close()


async def close(client: aiosmtplib.SMTP) -> None:
    import aiosmtplib

    if client.is_connected:
        try:
            await client.quit(timeout=5)
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            client.close()
