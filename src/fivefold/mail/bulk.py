"""``send_many``: many messages over a pool of connections, journalled for exactly-once resume.

``concurrency`` workers each hold one authenticated connection and take messages from a
shared queue; a connection carries message after message (an aborted transaction is reset
with RSET, a dropped connection is reopened). When the server advertises PIPELINING, each
connection is handed to :class:`fivefold.mail.pipeline.PipelinedSession` after login, which
sends MAIL, the RCPTs and DATA in one write (two round trips per message instead of four);
servers without it get aiosmtplib's one-command-at-a-time transactions. Every message is
journalled in the outbox (:mod:`fivefold.mail.outbox`) so that a run killed at any point can
be started again: what the server accepted is not sent again, what it did not is sent
exactly once.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from email.utils import make_msgid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fivefold._common.errors import FivefoldError
from fivefold.mail.fastcompose import SkeletonCache
from fivefold.mail.message import Message, ParsedAddresses, msgid_domain
from fivefold.mail.outbox import Finished, MemoryJournal, Outbox
from fivefold.mail.pipeline import Dropped, PipelinedSession, finish, wire_body
from fivefold.mail.sending import SendResult, as_secret, backoff_delay, prepare, run_sync
from fivefold.mail.transport import (
    ConnectOptions,
    Delivery,
    Endpoint,
    Secret,
    SendError,
    close,
    connect,
    transact,
)

if TYPE_CHECKING:
    import aiosmtplib

    from fivefold.mail.dkim import DkimSigner
    from fivefold.mail.streaming import StreamedMessage

log = logging.getLogger("fivefold.mail.bulk")


@dataclass(slots=True)
class Job:
    """One message of a batch, built lazily by the worker: bytes, or a streamed message whose
    large attachments are read from disk while DATA is written."""

    key: str
    sender: str
    recipients: list[str]
    build: Callable[[str], bytes | StreamedMessage]
    smtputf8: bool
    message_id: str


@dataclass
class BulkReport:
    total: int = 0
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    in_flight_at_start: int = 0
    elapsed: float = 0.0
    results: dict[str, SendResult] = field(default_factory=dict)

    def __repr__(self) -> str:
        # The generated repr would list every result; asyncio formats a finished task's result
        # with repr(), which cost ~30 µs per message of a batch.
        return (f"BulkReport(total={self.total}, sent={self.sent}, failed={self.failed}, "
                f"skipped={self.skipped}, elapsed={self.elapsed:.3f})")

    @property
    def rate(self) -> float:
        return (self.sent + self.failed) / self.elapsed if self.elapsed > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"total": self.total, "sent": self.sent, "failed": self.failed, "skipped": self.skipped,
                "in_flight_at_start": self.in_flight_at_start, "elapsed_s": round(self.elapsed, 3),
                "messages_per_s": round(self.rate, 1),
                "refused": {k: r.refused for k, r in self.results.items() if r.refused}}


def message_key(index: int, message: Message) -> str:
    """A key that is stable across runs of the same batch (position + envelope + subject)."""
    sender, recipients = message.envelope()
    return _key(index, sender, recipients, message.subject)


def _key(index: int, sender: str, recipients: list[str], subject: str) -> str:
    digest = hashlib.sha1("\0".join([sender, *recipients, subject]).encode(), usedforsecurity=False)
    return f"{index}:{digest.hexdigest()[:16]}"


def jobs_from_messages(messages: Iterable[Message], *, keys: list[str] | None = None,
                       dkim: DkimSigner | None = None) -> list[Job]:
    """Validates every message first (nothing is sent when one is bad), then makes jobs.

    Each message is parsed and checked once, here; its job keeps the results (envelope,
    SMTPUTF8) for the send, so a batch costs one parse per address.
    """
    batch = list(messages)
    if keys is not None and len(keys) != len(batch):
        raise FivefoldError(f"send_many: {len(keys)} keys for {len(batch)} messages")
    jobs: list[Job] = []
    skeletons = SkeletonCache() if dkim is None else None
    # Message-IDs as merge makes them: one make_msgid() per batch, numbered per message.
    batch_id = make_msgid(domain="x").strip("<>").partition("@")[0]  # no getfqdn() lookup
    senders: dict[str, tuple[str, str]] = {}
    for index, message in enumerate(batch):
        try:
            parsed = message.check()
        except FivefoldError as exc:
            raise type(exc)(f"message {index + 1}: {exc}") from None
        known = senders.get(message.sender)  # a batch usually has one sender: derive once
        if known is None:
            known = senders[message.sender] = (parsed.sender.addr_spec, msgid_domain(parsed.sender))
        sender, domain = known
        recipients = [address.addr_spec for address in parsed.recipients]
        utf8 = not (sender.isascii() and all(map(str.isascii, recipients)))
        if parsed.reply_to and not utf8:
            utf8 = not all(address.addr_spec.isascii() for address in parsed.reply_to)
        key = keys[index] if keys is not None else _key(index, sender, recipients, message.subject)
        message_id = message.message_id or f"<{batch_id}.{index}@{domain}>"

        def build(mid: str, message: Message = message, parsed: ParsedAddresses = parsed,
                  utf8: bool = utf8, first: str = recipients[0]) -> bytes | StreamedMessage:
            if skeletons is not None:  # the fast path: a skeleton fill, as merge does
                to_spec = first if parsed.to else None  # recipients start with the To addresses
                data = skeletons.compose(message, mid, parsed=parsed, utf8=utf8, to_spec=to_spec)
                if data is not None:
                    return data
            return prepare(replace(message, message_id=mid), dkim).data

        jobs.append(Job(key, sender, recipients, build, utf8, message_id))
    return jobs


@dataclass(slots=True)
class _Partial:
    """A message part-way through its attempts: what :meth:`_Worker.process` continues from."""

    job: Job
    data: bytes | StreamedMessage
    result: SendResult
    pending: list[str]
    deferred: dict[str, str]
    attempt: int  # the next attempt's index


class _Worker:
    def __init__(self, run: _Run) -> None:
        self.run = run
        self.client: aiosmtplib.SMTP | None = None
        self.session: PipelinedSession | None = None
        self.finished: Finished | None = None
        self.later: list[_Partial] = []

    def next_job(self) -> Job | None:
        queue = self.run.queue
        return queue.popleft() if queue else None

    async def loop(self) -> None:
        try:
            while (job := self.next_job()) is not None:
                if self.session is not None and self.session.is_connected:
                    await self.chain(job)
                else:
                    # The previous message's outcome and this one's "sending" share one commit.
                    finished, self.finished = self.finished, None
                    await self.run.commit(finished, job.key)
                    await self.process(job)
                while self.later:
                    partial = self.later.pop(0)
                    finished, self.finished = self.finished, None
                    await self.run.commit(finished, partial.job.key)
                    await self.process(partial.job, partial)
        finally:
            # Even when the batch is aborted: what the server accepted must be journalled.
            self.run.flush()
            self.run.outbox.transition(done=self.finished, sending=None)
            self.finished = None
            if self.session is not None:
                await self.session.close()
            elif self.client is not None:
                await close(self.client)

    async def ensure_client(self) -> aiosmtplib.SMTP | PipelinedSession:
        if self.session is not None:
            if self.session.is_connected:
                return self.session
            self.session.abort()
            self.session = None
        if self.client is None or not self.client.is_connected:
            self.client = await connect(self.run.endpoint, self.run.options)
            if self.run.pipelining:
                self.session = PipelinedSession.take_over(self.client, self.run.endpoint)
                if self.session is not None:
                    self.client = None  # the transport is the session's now
                    return self.session
        return self.client

    async def chain(self, job: Job | None) -> None:
        """Messages back to back on a pipelined session, one write each: the body of one
        message, then the envelope (MAIL, RCPTs, DATA) of the next.

        Journal order is as in :meth:`process`: a message is marked ``sending`` (committed)
        after its DATA got 354 and before its body is written, and ``sent`` (in the same
        commit as the next one's ``sending``) once the body's 250 has arrived. Anything but
        a clean delivery (a 4xx to retry, a drop, a message that must be streamed) leaves the
        chain for :meth:`process`, with the attempts made so far.
        """
        run, session = self.run, self.session
        assert session is not None
        timeout = run.options.timeout
        if self.finished is not None:
            run.outbox.transition(done=self.finished, sending=None)
            self.finished = None
        carry: _Partial | None = None  # marked sending; its body goes in the next write
        opened_for_carry: Delivery | None = None
        utf8_offered = "smtputf8" in session.extensions
        while job is not None or carry is not None:
            data: bytes | StreamedMessage | None = None
            if job is not None:
                data = job.build(job.message_id)
                if not isinstance(data, bytes) or (job.smtputf8 and not utf8_offered):
                    self.later.append(_Partial(job, data, SendResult(job.message_id), list(job.recipients),
                                               {}, 0))
                    job = None
            body = None
            if carry is not None:
                assert isinstance(carry.data, bytes)  # only whole-bytes messages join the chain
                body = wire_body(carry.data)
            if body is None and job is None:
                return
            try:
                if job is not None:
                    assert isinstance(data, bytes)  # anything else left the chain above
                    reply, opened = await session.exchange(body, job.sender, job.recipients, len(data),
                                                           smtputf8=job.smtputf8, timeout=timeout)
                else:
                    reply, opened = await session.exchange(body, None, [], 0, smtputf8=False, timeout=timeout)
            except Dropped as exc:  # a timeout or a drop: the server kept nothing unfinished
                if carry is not None and opened_for_carry is not None:
                    if exc.body_reply is not None:  # answered before the drop: settled
                        run.outbox.transition(done=self.settle(carry, opened_for_carry, exc.body_reply),
                                              sending=None)
                    else:  # every recipient still wanting it: those accepted and those deferred
                        carry.pending = [*opened_for_carry.accepted, *opened_for_carry.retry]
                        carry.deferred = {**dict.fromkeys(opened_for_carry.accepted, str(exc)),
                                          **opened_for_carry.retry}
                        self.later.append(carry)
                if job is not None and data is not None:
                    self.later.append(_Partial(job, data, SendResult(job.message_id), list(job.recipients),
                                               {}, 0))
                return
            done: Finished | None = None
            if carry is not None and reply is not None and opened_for_carry is not None:
                done = self.settle(carry, opened_for_carry, reply)
            carry, opened_for_carry = None, None
            if job is not None and opened is not None and data is not None:
                result = SendResult(message_id=job.message_id, attempts=1)
                delivery = opened.delivery
                if delivery.refused:
                    result.refused.update(delivery.refused)
                if opened.error is not None:
                    if opened.error.transient:
                        self.later.append(_Partial(job, data, result, list(job.recipients),
                                                   dict.fromkeys(job.recipients, str(opened.error)), 1))
                    else:
                        result.refused.update(dict.fromkeys(job.recipients, str(opened.error)))
                        run.outbox.transition(done=self.record(job, result, [], {}), sending=None)
                elif opened.ready:
                    carry = _Partial(job, data, result, list(delivery.accepted), {}, 1)
                    opened_for_carry = delivery
                elif delivery.retry:  # nothing delivered yet; some recipients may take it later
                    self.later.append(_Partial(job, data, result, list(delivery.retry), delivery.retry, 1))
                else:
                    run.outbox.transition(done=self.record(job, result, [], {}), sending=None)
            if run.durable:  # without an outbox file there is nothing to journal
                await run.commit(done, carry.job.key if carry is not None else None)
            job = self.next_job() if job is not None and not self.later else None

    def settle(self, carry: _Partial, delivery: Delivery, reply: tuple[int, str]) -> Finished | None:
        """The body's reply for a chained message: its outcome, or ``None`` when recipients
        remain to retry (it then stays ``sending`` until :meth:`process` ends its attempts)."""
        finish(delivery, reply)
        carry.result.accepted.extend(delivery.accepted)
        carry.result.refused.update(delivery.refused)
        carry.result.reply = delivery.reply or carry.result.reply
        if delivery.retry:
            carry.pending, carry.deferred = list(delivery.retry), delivery.retry
            self.later.append(carry)
            return None
        return self.record(carry.job, carry.result, [], {})

    async def process(self, job: Job, partial: _Partial | None = None) -> None:
        run = self.run
        if partial is None:
            data = job.build(job.message_id)
            result = SendResult(message_id=job.message_id)
            pending = list(job.recipients)
            deferred: dict[str, str] = {}
            first = 0
        else:
            data, result, pending, deferred, first = (partial.data, partial.result, partial.pending,
                                                      partial.deferred, partial.attempt)
            if 0 < first <= run.retries:
                await asyncio.sleep(backoff_delay(first - 1, run.backoff))
        for attempt in range(first, run.retries + 1):
            result.attempts = attempt + 1
            try:
                client = await self.ensure_client()
            except SendError as exc:
                if not exc.transient or attempt == run.retries:
                    run.outbox.requeue(job.key)
                    raise  # the server is unusable: stop the batch, this message stays queued
                await asyncio.sleep(backoff_delay(attempt, run.backoff))
                continue
            try:
                if isinstance(client, PipelinedSession):
                    delivery = await client.transact(job.sender, pending, data, smtputf8=job.smtputf8,
                                                     timeout=run.options.timeout)
                else:
                    delivery = await transact(client, run.endpoint, job.sender, pending, data,
                                              smtputf8=job.smtputf8, timeout=run.options.timeout)
            except SendError as exc:
                if not exc.transient or attempt == run.retries:
                    result.refused.update({rcpt: str(exc) for rcpt in pending})
                    pending = []
                    break
                deferred = dict.fromkeys(pending, str(exc))
            else:
                result.accepted.extend(delivery.accepted)
                result.refused.update(delivery.refused)
                result.reply = delivery.reply or result.reply
                pending = list(delivery.retry)
                deferred = delivery.retry
                if not pending:
                    break
            if attempt < run.retries:
                await asyncio.sleep(backoff_delay(attempt, run.backoff))
        self.finished = self.record(job, result, pending, deferred)

    def record(self, job: Job, result: SendResult, pending: list[str],
               deferred: dict[str, str]) -> Finished | None:
        """The message's outcome in the report; the caller journals the returned record
        (``None`` without an outbox file: nothing could ever read it back)."""
        run = self.run
        for rcpt in pending:
            result.refused[rcpt] = deferred.get(rcpt, "deferred")
        sent = bool(result.accepted)
        run.report.results[job.key] = result
        if sent:
            run.report.sent += 1
        else:
            run.report.failed += 1
        if run.progress is not None:
            run.progress(run.report.sent + run.report.failed, run.todo)
        if not run.durable:
            return None
        return Finished(job.key, sent, result.accepted, result.refused,
                        None if sent else "; ".join(sorted(set(result.refused.values())))[:500])


@dataclass
class _Run:
    """What the workers of one batch share.

    ``commit`` is a group commit: the journal updates that workers ask for in one turn of
    the event loop go to SQLite in one transaction, and each worker waits until it is
    committed, so a message is still ``sending`` on disk before its DATA is written.
    """

    endpoint: Endpoint
    options: ConnectOptions
    outbox: Outbox | MemoryJournal
    queue: deque[Job]  # the workers share one event loop: a plain deque is enough
    report: BulkReport
    retries: int
    backoff: float
    todo: int
    progress: Callable[[int, int], None] | None
    pipelining: bool = True
    pending: list[tuple[Finished | None, str | None]] = field(default_factory=list)
    committed: asyncio.Future[None] | None = None

    def __post_init__(self) -> None:
        self.durable = not isinstance(self.outbox, MemoryJournal)

    async def commit(self, done: Finished | None, sending: str | None) -> None:
        if done is None and sending is None:
            return
        if not self.durable:  # nothing to share: no disk
            self.outbox.transition(done=done, sending=sending)
            return
        self.pending.append((done, sending))
        if self.committed is None:
            loop = asyncio.get_running_loop()
            self.committed = loop.create_future()
            loop.call_soon(self._flush_into, self.committed)
        await asyncio.shield(self.committed)

    def _flush_into(self, committed: asyncio.Future[None]) -> None:
        try:
            self.flush()
        except BaseException as exc:  # every waiting worker sees the journal's failure
            if not committed.done():
                committed.set_exception(exc)
            return
        if not committed.done():
            committed.set_result(None)

    def flush(self) -> None:
        """Commits what is pending now (also called when a worker stops)."""
        items, self.pending, self.committed = self.pending, [], None
        if items:
            self.outbox.transitions(items)


async def send_jobs(jobs: list[Job], endpoint: Endpoint, options: ConnectOptions, *,
                    concurrency: int = 8, outbox: Path | None = None, retries: int = 3,
                    backoff: float = 0.5, retry_failed: bool = False,
                    progress: Callable[[int, int], None] | None = None,
                    pipelining: bool = True) -> BulkReport:
    if concurrency < 1:
        raise FivefoldError("concurrency must be at least 1")
    started = time.perf_counter()
    journal: Outbox | MemoryJournal = Outbox(outbox) if outbox is not None else MemoryJournal()
    report = BulkReport(total=len(jobs), in_flight_at_start=journal.in_flight_at_start)
    try:
        if retry_failed:
            journal.requeue_failed()
        known = journal.enqueue((job.key, job.message_id) for job in jobs)
        queue: deque[Job] = deque()
        for job in jobs:
            state, stored_id = known[job.key]
            if state in ("sent", "failed"):
                report.skipped += 1
                continue
            if stored_id:
                job.message_id = stored_id  # a resent message keeps its Message-ID
            queue.append(job)
        if journal.in_flight_at_start:
            log.warning("outbox %s: %d message(s) were in flight when the last run stopped; sending "
                        "them again (the server may already have them)", outbox, journal.in_flight_at_start)
        run = _Run(endpoint, options, journal, queue, report, retries, backoff, len(queue), progress,
                   pipelining)
        workers = [_Worker(run) for _ in range(min(concurrency, max(1, len(queue))))]
        tasks = [asyncio.create_task(worker.loop()) for worker in workers]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
    finally:
        journal.close()
        report.elapsed = time.perf_counter() - started
    return report


def send_many(
    messages: Iterable[Message],
    server: str = "127.0.0.1:25",
    security: str | None = None,
    user: str | None = None,
    password: str | Secret | None = None,
    timeout: float = 30.0,
    *,
    concurrency: int = 8,
    outbox: Path | None = None,
    keys: list[str] | None = None,
    retries: int = 3,
    backoff: float = 0.5,
    cafile: Path | None = None,
    insecure: bool = False,
    allow_plain: bool = False,
    oauth_token: str | Secret | None = None,
    dkim: DkimSigner | None = None,
    retry_failed: bool = False,
    progress: Callable[[int, int], None] | None = None,
    pipelining: bool = True,
) -> BulkReport:
    """Sends a batch over ``concurrency`` reused connections; resumable with ``outbox=PATH``.

    Every message is validated before the first is sent. With an outbox file, a second run
    of the same batch (same messages in the same order, or the same ``keys``) skips what the
    server accepted and sends the rest. ``pipelining=False`` keeps to one command per round
    trip even where the server offers PIPELINING.
    """
    endpoint = Endpoint.parse(server, security)
    options = ConnectOptions(timeout=timeout, cafile=cafile, insecure=insecure, allow_plain=allow_plain,
                             user=user, password=as_secret(password), oauth_token=as_secret(oauth_token))
    options.check(endpoint)
    jobs = jobs_from_messages(messages, keys=keys, dkim=dkim)
    report: BulkReport = run_sync(send_jobs(jobs, endpoint, options, concurrency=concurrency, outbox=outbox,
                                            retries=retries, backoff=backoff, retry_failed=retry_failed,
                                            progress=progress, pipelining=pipelining))
    return report
