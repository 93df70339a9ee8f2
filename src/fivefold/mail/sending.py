"""``send``: one message, with retries of what is transient and per-recipient results.

``send`` is synchronous (it runs its own event loop, or a worker thread when called from
inside a running loop) so that plain scripts and other tools can call it; ``send_async`` is
the coroutine underneath.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fivefold.mail.message import Message
from fivefold.mail.transport import (
    ConnectOptions,
    Endpoint,
    Secret,
    SendError,
    close,
    connect,
    transact,
)

if TYPE_CHECKING:
    from fivefold.mail.dkim import DkimSigner
    from fivefold.mail.streaming import StreamedMessage

log = logging.getLogger("fivefold.mail.sending")


@dataclass(slots=True)
class SendResult:
    """Per-recipient outcome of one message."""

    message_id: str
    accepted: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    attempts: int = 0
    reply: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.accepted) and not self.refused

    def to_dict(self) -> dict[str, Any]:
        return {"message_id": self.message_id, "accepted": self.accepted, "refused": self.refused,
                "attempts": self.attempts, "reply": self.reply, "ok": self.ok}


@dataclass(frozen=True)
class Prepared:
    """A message ready for the wire: envelope, bytes, and whether it needs SMTPUTF8."""

    sender: str
    recipients: list[str]
    data: bytes | StreamedMessage
    smtputf8: bool
    message_id: str

    @property
    def payload(self) -> bytes:
        """The whole message as bytes (joins a streamed one: for dry runs and tests)."""
        if isinstance(self.data, bytes):
            return self.data
        return self.data.joined()


def prepare(message: Message, dkim: DkimSigner | None = None, *, stream: bool = True) -> Prepared:
    """Composes ``message``; large attachments are streamed at send time unless DKIM must hash them."""
    if stream and dkim is None:
        from fivefold.mail.streaming import compose_streamed, wants_streaming

        if wants_streaming(message):
            streamed = compose_streamed(message)
            sender, recipients = message.envelope()
            return Prepared(sender, recipients, streamed, message.needs_smtputf8(), streamed.message_id)
    composed = message.compose()
    data = composed.as_bytes()
    if dkim is not None:
        data = dkim.sign(data)
    sender, recipients = message.envelope()
    return Prepared(sender, recipients, data, message.needs_smtputf8(), str(composed["Message-ID"]))


def as_secret(value: str | Secret | None) -> Secret | None:
    if value is None or isinstance(value, Secret):
        return value
    return Secret(value)


def backoff_delay(attempt: int, base: float) -> float:
    """Exponential with jitter, so that many senders retrying do not march in step."""
    return float(min(base * (2 ** attempt), 60.0) * random.uniform(0.8, 1.2))


async def deliver_prepared(prepared: Prepared, endpoint: Endpoint, options: ConnectOptions, *,
                           retries: int = 3, backoff: float = 0.5) -> SendResult:
    """Connects, sends, retries transient failures for the recipients still pending."""
    result = SendResult(message_id=prepared.message_id)
    pending = list(prepared.recipients)
    last_retry: dict[str, str] = {}
    last_error: SendError | None = None
    for attempt in range(retries + 1):
        result.attempts = attempt + 1
        try:
            client = await connect(endpoint, options)
            try:
                delivery = await transact(client, endpoint, prepared.sender, pending, prepared.data,
                                          smtputf8=prepared.smtputf8, timeout=options.timeout)
            finally:
                await close(client)
        except SendError as exc:
            if not exc.transient or attempt == retries:
                if result.accepted:  # some got it on an earlier attempt: report, do not raise
                    result.refused.update({rcpt: str(exc) for rcpt in pending})
                    return result
                raise
            last_error = exc
            log.info("attempt %d failed (%s); retrying", attempt + 1, exc)
        else:
            result.accepted.extend(delivery.accepted)
            result.refused.update(delivery.refused)
            result.reply = delivery.reply or result.reply
            pending = list(delivery.retry)
            last_retry = delivery.retry
            if not pending:
                return result
            log.info("attempt %d: %d recipient(s) deferred; retrying", attempt + 1, len(pending))
        if attempt < retries:
            await asyncio.sleep(backoff_delay(attempt, backoff))
    for rcpt in pending:
        result.refused[rcpt] = last_retry.get(rcpt) or str(last_error or "deferred")
    return result


async def send_async(
    message: Message,
    server: str = "127.0.0.1:25",
    security: str | None = None,
    user: str | None = None,
    password: str | Secret | None = None,
    timeout: float = 30.0,
    *,
    cafile: Path | None = None,
    insecure: bool = False,
    allow_plain: bool = False,
    oauth_token: str | Secret | None = None,
    retries: int = 3,
    backoff: float = 0.5,
    dkim: DkimSigner | None = None,
) -> SendResult:
    """Sends ``message``; see :func:`send`."""
    endpoint = Endpoint.parse(server, security)
    options = ConnectOptions(timeout=timeout, cafile=cafile, insecure=insecure, allow_plain=allow_plain,
                             user=user, password=as_secret(password), oauth_token=as_secret(oauth_token))
    options.check(endpoint)
    prepared = prepare(message, dkim)
    return await deliver_prepared(prepared, endpoint, options, retries=retries, backoff=backoff)


def send(
    message: Message,
    server: str = "127.0.0.1:25",
    security: str | None = None,
    user: str | None = None,
    password: str | Secret | None = None,
    timeout: float = 30.0,
    **kwargs: Any,
) -> SendResult:
    """Sends one message and returns who accepted it and who refused it (with the reply).

    ``security`` is ``"tls"``, ``"starttls"`` or ``"none"``; ``None`` picks from the port
    (465 TLS, 587 STARTTLS, otherwise none). Certificates are verified unless
    ``insecure=True``. Transient failures are retried ``retries`` times with exponential
    backoff; connection, TLS and AUTH failures raise :class:`SendError`.
    """
    coro = send_async(message, server, security, user, password, timeout, **kwargs)
    result: SendResult = run_sync(coro)
    return result


def run_sync(coro: Any) -> Any:
    """``asyncio.run``, or the same in a worker thread when a loop already runs here."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: list[Any] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            box.append(asyncio.run(coro))
        except BaseException as exc:  # handed back to the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=worker, name="fivefold-mail-send")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return box[0]
