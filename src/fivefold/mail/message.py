"""``Message`` and ``Attachment``: what to send, composed into a stdlib ``EmailMessage``.

The structure is the one mail clients expect::

    multipart/mixed
      multipart/alternative
        text/plain
        multipart/related            (only with inline images)
          text/html
          image/png  (Content-ID)
      attachment ...

built with ``EmailMessage.set_content/add_alternative/add_related/add_attachment`` under the
modern ``email.policy`` (never the legacy ``MIMEMultipart`` classes): that policy writes
Unicode file names as RFC 2231 parameters, display names as RFC 2047 words, picks a
transfer encoding that keeps every line under 998 octets, and folds long headers.
Bcc recipients are returned by :meth:`Message.envelope` and never written into a header.
"""

from __future__ import annotations

import datetime as dt
import email.policy
import mimetypes
import re
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import NamedTuple

from fivefold._common.errors import UsageError
from fivefold.mail.addresses import (
    AddressError,
    check_header_name,
    check_header_value,
    dedupe,
    needs_smtputf8,
    parse_address,
    parse_list,
)

# Headers that Message owns; setting them through ``headers=`` would bypass the checks.
_RESERVED = {"from", "to", "cc", "bcc", "subject", "date", "message-id", "mime-version",
             "content-type", "content-transfer-encoding", "reply-to", "sender"}

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
    (b"PK\x03\x04", "application/zip"),
    (b"\x1f\x8b", "application/gzip"),
)


def guess_type(filename: str, head: bytes) -> str:
    """MIME type from the content's magic bytes, then the name, then text-or-binary."""
    for magic, mime in _MAGIC:
        if head.startswith(magic):
            if mime == "application/zip":  # docx/xlsx/odt are zips: the name knows better
                named, _ = mimetypes.guess_type(filename, strict=False)
                return named or mime
            return mime
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "image/webp"
    named, _ = mimetypes.guess_type(filename, strict=False)
    if named:
        return named
    try:
        head[:4096].decode("utf-8")
    except UnicodeDecodeError:
        # A multi-byte character cut at the 4 KiB boundary is still text.
        try:
            head[:4093].decode("utf-8")
        except UnicodeDecodeError:
            return "application/octet-stream"
    return "text/plain" if b"\x00" not in head[:4096] else "application/octet-stream"


@dataclass
class Attachment:
    """A file to attach (or, with ``cid``, an inline image the HTML refers to as ``cid:...``)."""

    filename: str
    data: bytes | None = None
    content_type: str | None = None
    path: Path | None = None
    cid: str | None = None

    @classmethod
    def from_path(cls, path: Path | str, *, filename: str | None = None, content_type: str | None = None,
                  cid: str | None = None) -> Attachment:
        path = Path(path)
        return cls(filename=filename or path.name, path=path, content_type=content_type, cid=cid)

    def check(self) -> None:
        """Raises :class:`UsageError` now for what would otherwise fail mid-batch."""
        check_header_value("attachment filename", self.filename)
        if self.data is None and self.path is None:
            raise UsageError(f"attachment {self.filename!r}: neither data nor path given")
        if self.data is None and self.path is not None:
            if not self.path.is_file():
                raise UsageError(f"attachment {self.path}: no such file")
            try:
                with self.path.open("rb"):
                    pass
            except OSError as exc:
                raise UsageError(f"attachment {self.path}: cannot read: {exc.strerror}") from None
        if self.content_type is not None and not re.fullmatch(r"[\w.+-]+/[\w.+-]+", self.content_type):
            raise UsageError(f"attachment {self.filename!r}: invalid content type {self.content_type!r}")
        if self.cid is not None:
            check_header_value("Content-ID", self.cid)

    def read(self) -> bytes:
        if self.data is not None:
            return self.data
        assert self.path is not None
        try:
            return self.path.read_bytes()
        except OSError as exc:
            raise UsageError(f"attachment {self.path}: cannot read: {exc.strerror}") from None

    def mime_type(self, head: bytes | None = None) -> tuple[str, str]:
        ctype = self.content_type
        if ctype is None:
            if head is None:
                head = self.data[:4096] if self.data is not None else self._head()
            ctype = guess_type(self.filename, head)
        maintype, _, subtype = ctype.partition("/")
        return maintype, subtype

    def _head(self) -> bytes:
        assert self.path is not None
        with self.path.open("rb") as handle:
            return handle.read(4096)


@dataclass
class Message:
    """One email. ``to``/``cc``/``bcc`` take ``'Name <a@x>'`` strings; Bcc stays off the headers."""

    sender: str
    to: list[str] = field(default_factory=list)
    subject: str = ""
    text: str | None = None
    html: str | None = None
    cc: list[str] = field(default_factory=list)
    bcc: list[str] = field(default_factory=list)
    reply_to: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    inline: list[Attachment] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    message_id: str | None = None
    date: dt.datetime | None = None

    # -- validation ------------------------------------------------------------------------
    def parsed(self) -> ParsedAddresses:
        """Validated, de-duplicated addresses (raises before anything is sent)."""
        # Cached against the fields it depends on: the dataclass stays freely mutable.
        state = (self.sender, tuple(self.to), tuple(self.cc), tuple(self.bcc), tuple(self.reply_to))
        cached = self.__dict__.get("_parsed")
        if cached is not None and cached[0] == state:
            return cached[1]  # type: ignore[no-any-return]
        result = self._parse()
        self.__dict__["_parsed"] = (state, result)
        return result

    def _parse(self) -> ParsedAddresses:
        sender = parse_address(self.sender, field="From")
        to = parse_list(self.to, field="To")
        if self.cc or self.bcc or len(to) > 1:  # else there is nothing to de-duplicate
            to, cc, bcc = dedupe(to, parse_list(self.cc, field="Cc"), parse_list(self.bcc, field="Bcc"))
        else:
            cc, bcc = [], []
        reply_to = parse_list(self.reply_to, field="Reply-To") if self.reply_to else []
        if not (to or cc or bcc):
            raise AddressError("no recipients: give at least one To, Cc or Bcc address")
        return ParsedAddresses(sender, to, cc, bcc, reply_to)

    def check(self) -> ParsedAddresses:
        parsed = self.parsed()
        check_header_value("Subject", self.subject)
        for name, value in self.headers.items():
            check_header_name(name)
            if name.lower() in _RESERVED:
                raise UsageError(f"header {name!r} is set by Message itself; use its field instead")
            check_header_value(name, value)
        if self.message_id is not None:
            check_header_value("Message-ID", self.message_id)
        for item in self.attachments:
            item.check()
        if self.inline:
            for item in self.inline:
                item.check()
                if item.cid is None:
                    raise UsageError(f"inline image {item.filename!r} needs a cid (the HTML's cid:NAME)")
            if self.html is None:
                raise UsageError("inline images need an HTML body that refers to them")
        return parsed

    def envelope(self) -> tuple[str, list[str]]:
        """``(MAIL FROM, RCPT TO list)``: To, Cc and Bcc, de-duplicated."""
        parsed = self.parsed()
        return parsed.sender.addr_spec, [a.addr_spec for a in parsed.recipients]

    def needs_smtputf8(self) -> bool:
        parsed = self.parsed()
        return any(needs_smtputf8(a) for a in [parsed.sender, *parsed.recipients, *parsed.reply_to])

    # -- composing -------------------------------------------------------------------------
    def compose(self) -> EmailMessage:
        """The full ``EmailMessage`` (Date and Message-ID filled in when not given)."""
        parsed = self.check()
        utf8 = any(needs_smtputf8(a) for a in [parsed.sender, *parsed.recipients, *parsed.reply_to])
        policy = email.policy.SMTPUTF8 if utf8 else email.policy.SMTP
        msg = EmailMessage(policy=policy)
        msg["From"] = parsed.sender
        if parsed.to:
            msg["To"] = parsed.to
        if parsed.cc:
            msg["Cc"] = parsed.cc
        if parsed.reply_to:
            msg["Reply-To"] = parsed.reply_to
        msg["Subject"] = self.subject
        msg["Date"] = format_datetime(self.date or dt.datetime.now(dt.UTC).astimezone())
        msg["Message-ID"] = self.message_id or make_msgid(domain=msgid_domain(parsed.sender))
        for name, value in self.headers.items():
            msg[name] = value
        self._fill_body(msg)
        return msg

    def _fill_body(self, msg: EmailMessage) -> None:
        text = self.text
        if text is None:
            from fivefold.mail.htmltext import html_to_text

            text = html_to_text(self.html) if self.html is not None else ""
        msg.set_content(text)
        if self.html is not None:
            msg.add_alternative(self.html, subtype="html")
            if self.inline:
                html_part = list(msg.iter_parts())[1]
                assert isinstance(html_part, EmailMessage)
                for image in self.inline:
                    data = image.read()
                    maintype, subtype = image.mime_type(data[:4096])
                    html_part.add_related(data, maintype, subtype, cid=f"<{image.cid}>",
                                          disposition="inline", filename=image.filename)
        for item in self.attachments:
            data = item.read()
            maintype, subtype = item.mime_type(data[:4096])
            # Bytes are always base64: attached text keeps its exact bytes and line ends.
            msg.add_attachment(data, maintype, subtype, filename=item.filename)

    def to_bytes(self) -> bytes:
        """The message as it goes over the wire (CRLF line ends)."""
        return self.compose().as_bytes()


class ParsedAddresses(NamedTuple):
    """A message's validated addresses (a named tuple: made once per message of a batch,
    and several times cheaper to make than a frozen dataclass)."""

    sender: Address
    to: list[Address]
    cc: list[Address]
    bcc: list[Address]
    reply_to: list[Address]

    @property
    def recipients(self) -> list[Address]:
        return [*self.to, *self.cc, *self.bcc]


def msgid_domain(sender: Address) -> str:
    domain = sender.domain or "localhost"
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            domain = "localhost"
    return domain
