"""Mail merge: one template, many rows, one personalised message per row, sent in bulk.

Everything is checked before the first message goes out: the template compiles, the CSV
has every column the template uses, every address parses, every attachment is readable,
and each row renders (the rendered text is kept only for the moment its message is built).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from email.headerregistry import Address
from email.utils import make_msgid
from pathlib import Path
from typing import TYPE_CHECKING

from fivefold._common.errors import UsageError
from fivefold.mail.addresses import check_header_value, needs_smtputf8, parse_address
from fivefold.mail.bulk import BulkReport, Job, send_jobs
from fivefold.mail.fastcompose import Skeleton
from fivefold.mail.message import Message, msgid_domain
from fivefold.mail.sending import prepare, run_sync
from fivefold.mail.templates import MergeTemplate, email_column, read_rows, row_address
from fivefold.mail.transport import ConnectOptions, Endpoint

if TYPE_CHECKING:
    from fivefold.mail.dkim import DkimSigner


@dataclass
class MergePlan:
    """A validated batch: the template, the rows and the sender, ready to become jobs."""

    template: MergeTemplate
    rows: list[dict[str, str]]
    sender: str
    name_column: str | None = "name"
    source: str = "rows"

    def __post_init__(self) -> None:
        parse_address(self.sender, field="--from")
        for item in [*self.template.attachments, *self.template.inline]:
            item.check()
        if self.template.inline and self.template.html is None:
            raise UsageError(f"{self.template.source}: inline images need an html.j2")
        column = email_column(list(self.rows[0])) if self.rows else None
        self.email_column = column or "email"
        # Every address is parsed once, here, and kept for sending. Columns were checked
        # against the template; subjects are rendered now because a value could still
        # smuggle a line break into the header. They are kept for sending too.
        self.addresses: list[Address] = []
        self.subjects: list[str] = []
        for number, row in enumerate(self.rows, 2):  # line 1 is the header
            self.addresses.append(row_address(row, self.email_column, self.name_column,
                                              where=f"{self.source} line {number}"))
            subject = self.template.render_subject(row)
            try:
                check_header_value("Subject", subject)
            except UsageError as exc:
                raise UsageError(f"row {number}: {exc}") from None
            self.subjects.append(subject)

    def message(self, index: int) -> Message:
        """Row ``index`` as a full ``Message`` (the slow path, and what dry runs write)."""
        subject, text, html = self.template.render(self.rows[index])
        return Message(sender=self.sender, to=[str(self.addresses[index])], subject=subject, text=text,
                       html=html, attachments=list(self.template.attachments),
                       inline=list(self.template.inline))

    def jobs(self, *, dkim: DkimSigner | None = None) -> list[Job]:
        sender = parse_address(self.sender, field="--from")
        skeleton = Skeleton(Message(sender=self.sender, to=["x@x.invalid"], subject="s",
                                    text=self.template.text, html=self.template.html,
                                    attachments=list(self.template.attachments),
                                    inline=list(self.template.inline)))
        jobs: list[Job] = []
        sender_spec, sender_utf8 = sender.addr_spec, needs_smtputf8(sender)
        # Message-IDs: one unique make_msgid() for the batch, numbered per message (unique
        # as long as the batch's is, at a fraction of the cost of one make_msgid each).
        batch_id, _, domain = make_msgid(domain=msgid_domain(sender)).strip("<>").partition("@")
        for index, address in enumerate(self.addresses):
            spec = address.addr_spec  # a computed property: once per row
            digest = hashlib.sha1(spec.encode(), usedforsecurity=False).hexdigest()[:16]
            utf8 = not spec.isascii()
            jobs.append(Job(key=f"{index}:{digest}", sender=sender_spec, recipients=[spec],
                            build=self._builder(skeleton, index, spec, utf8, dkim),
                            smtputf8=utf8 or sender_utf8, message_id=f"<{batch_id}.{index}@{domain}>"))
        return jobs

    def _builder(self, skeleton: Skeleton, index: int, spec: str, utf8: bool,
                 dkim: DkimSigner | None) -> Callable[[str], bytes]:
        row = self.rows[index]

        def build(message_id: str) -> bytes:
            subject = self.subjects[index]
            text, html = self.template.render_bodies(row)
            data = None
            if not (utf8 and not skeleton.utf8):
                data = skeleton.fill(to=self.addresses[index], subject=subject, message_id=message_id,
                                     text=text, html=html, to_spec=spec)
            if data is None:  # this row needs what the skeleton cannot do: compose it fully
                message = self.message(index)
                message.message_id = message_id
                return prepare(message, dkim, stream=False).payload
            return dkim.sign(data) if dkim is not None else data

        return build


def plan(template: Path | MergeTemplate, rows: Path | list[dict[str, str]], *, sender: str) -> MergePlan:
    tmpl = template if isinstance(template, MergeTemplate) else MergeTemplate.load(template)
    if isinstance(rows, Path):
        data = read_rows(rows, tmpl)
    else:
        from fivefold.mail.templates import check_rows

        data = check_rows([dict(r) for r in rows], list(rows[0]) if rows else [], tmpl)
    return MergePlan(tmpl, data, sender, source=str(rows) if isinstance(rows, Path) else "rows")


def merge(
    template: Path | MergeTemplate | MergePlan,
    rows: Path | list[dict[str, str]] | None = None,
    *,
    sender: str | None = None,
    server: str = "127.0.0.1:25",
    security: str | None = None,
    options: ConnectOptions | None = None,
    concurrency: int = 8,
    outbox: Path | None = None,
    retries: int = 3,
    backoff: float = 0.5,
    dkim: DkimSigner | None = None,
    dry_run: Path | None = None,
    retry_failed: bool = False,
    progress: Callable[[int, int], None] | None = None,
    pipelining: bool = True,
) -> BulkReport | list[Path]:
    """Sends one personalised message per row (or writes ``.eml`` files with ``dry_run``).

    ``template`` may be a :class:`MergePlan` already validated by :func:`plan`: it carries its
    rows and sender, so ``rows`` and ``sender`` are then left out, and the batch is not validated
    twice. Otherwise both are required."""
    if isinstance(template, MergePlan):
        if rows is not None or sender is not None:
            raise UsageError("a MergePlan carries its own rows and sender; pass neither with it")
        batch = template
    elif rows is None or sender is None:
        raise UsageError("merge needs rows and sender (or a MergePlan from plan())")
    else:
        batch = plan(template, rows, sender=sender)
    if dry_run is not None:
        from fivefold.mail.dryrun import write_eml

        return [write_eml(batch.message(i), dry_run, index=i + 1, dkim=dkim)
                for i in range(len(batch.rows))]
    endpoint = Endpoint.parse(server, security)
    options = options or ConnectOptions()
    options.check(endpoint)
    jobs = batch.jobs(dkim=dkim)
    report: BulkReport = run_sync(send_jobs(jobs, endpoint, options, concurrency=concurrency, outbox=outbox,
                                            retries=retries, backoff=backoff, retry_failed=retry_failed,
                                            progress=progress, pipelining=pipelining))
    return report
