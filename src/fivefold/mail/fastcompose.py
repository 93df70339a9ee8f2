"""Render once, fill per recipient: the bytes of a personalised message in microseconds.

Composing with the stdlib's ``email`` package costs milliseconds per message, nearly all of
it re-deriving the same structure, boundaries and attachment encodings. A :class:`Skeleton`
composes one prototype with the stdlib (so structure, RFC 2231 names and attachment
encodings are the stdlib's, unchanged), then cuts its bytes at slot markers: To, Subject,
Date, Message-ID, and each body with its Content-Transfer-Encoding. Filling a slot is a
bytes join; bodies are 7bit when they can be, else base64 (C speed); a header value that
needs RFC 2047 or folding goes through the stdlib for that header only.
"""

from __future__ import annotations

import base64
import datetime as dt
import email.policy
import re
import time
from dataclasses import replace
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from fivefold.mail.addresses import check_header_value
from fivefold.mail.message import Message, ParsedAddresses

_SLOTS = ("TO", "SUBJECT", "DATE", "MSGID", "TEXTCTE", "TEXT", "HTMLCTE", "HTML")
_MARK_PREFIX = "ZZfivefoldslot"  # marks a slot in the skeleton; bodies holding it go base64
_MARK = _MARK_PREFIX + "{}ZZ"
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~ .-]*$")
_ATEXT_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]*$")


class WireReady(bytes):
    """Message bytes known to be ready for DATA as they are: every line ends in CRLF (the
    last one too) and none starts with a dot, so neither line-end normalising nor
    dot-stuffing has to scan them again (:func:`fivefold.mail.pipeline.wire_body`)."""


def _wire_clean(data: bytes) -> bool:
    return (data.count(b"\n") == data.count(b"\r\n") == data.count(b"\r") and not data.startswith(b".")
            and b"\n." not in data)


class Skeleton:
    """The prototype message cut into constant byte pieces and named slots."""

    def __init__(self, prototype: Message, *, keep_cc: bool = False) -> None:
        marks = {name: _MARK.format(name) for name in _SLOTS}
        cc = list(prototype.cc) if keep_cc else []
        filled = replace(prototype, to=["slot@slot.invalid"], cc=cc, bcc=[], subject=marks["SUBJECT"],
                         message_id=f"<{marks['MSGID']}@x>",
                         text=marks["TEXT"] if prototype.text is not None or prototype.html is None else None,
                         html=marks["HTML"] if prototype.html is not None else None)
        self.has_text = filled.text is not None
        self.has_html = filled.html is not None
        if not self.has_text:
            filled = replace(filled, text=marks["TEXT"])
        composed = filled.compose()
        self.utf8 = bool(getattr(composed.policy, "utf8", False))
        self._force_slots(composed, marks)
        raw = composed.as_bytes()
        raw = raw.replace(b"To: slot@slot.invalid", f"To: {marks['TO']}".encode(), 1)
        raw = re.sub(rb"Date: [^\r\n]+", f"Date: {marks['DATE']}".encode(), raw, count=1)
        raw = raw.replace(f"<{marks['MSGID']}@x>".encode(), marks["MSGID"].encode(), 1)
        pattern = re.compile("|".join(re.escape(m) for m in marks.values()).encode())
        self.pieces: list[bytes | str] = []
        position = 0
        for match in pattern.finditer(raw):
            self.pieces.append(raw[position:match.start()])
            name = match.group().decode()[len(_MARK_PREFIX):-2]
            self.pieces.append(name)
            position = match.end()
        self.pieces.append(raw[position:])
        self.boundaries = re.findall(rb'boundary="([^"]+)"', raw)
        # Per fill: one bytes formatting of the constant pieces with the values in slot order.
        self._template = [piece if isinstance(piece, bytes) else b"" for piece in self.pieces]
        self._format = b"".join(piece.replace(b"%", b"%%") if isinstance(piece, bytes) else b"%b"
                                for piece in self.pieces)
        self._order = [piece for piece in self.pieces if isinstance(piece, str)]
        # The slot values are CRLF-clean by construction (headers are checked for CR/LF and
        # folded with CRLF, bodies are re-ended with CRLF, and base64 has no dots), so the
        # constant pieces, checked once here, decide whether fills are ready for the wire;
        # only a 7bit body line starting with a dot then needs stuffing.
        last = self.pieces[-1]
        self._wire = all(_wire_clean(piece) for piece in self._template) \
            and isinstance(last, bytes) and last.endswith(b"\r\n")
        # A body can only contain a boundary if it contains their common start (the stdlib's
        # are "===============<digits>=="): one scan instead of one per boundary.
        probe = _common_start(self.boundaries)
        self._probe: bytes | None = probe if len(probe) >= 8 else None

    @staticmethod
    def _force_slots(composed: EmailMessage, marks: dict[str, str]) -> None:
        """Body parts carry bare slot markers and a CTE slot instead of the stdlib's encoding."""
        for part in composed.walk():
            if part.is_multipart() or part.get_content_maintype() != "text":
                continue
            if part.get_filename() is not None:
                continue
            kind = "HTML" if part.get_content_subtype() == "html" else "TEXT"
            content = part.get_content()
            if marks[kind] not in content:
                continue
            del part["Content-Transfer-Encoding"]
            part["Content-Transfer-Encoding"] = marks[f"{kind}CTE"]
            part.set_payload(marks[kind] + "\r\n")

    def fill(self, *, to: Address, subject: str, message_id: str, text: str | None, html: str | None,
             date: dt.datetime | None = None, to_spec: str | None = None) -> bytes | None:
        """The message bytes, or ``None`` when this recipient needs the slow path.

        ``to_spec`` is ``to.addr_spec`` when the caller has it already (a computed property)."""
        if text is None:
            if self.has_text:
                return None
            from fivefold.mail.htmltext import html_to_text

            text = html_to_text(html or "")
        if (html is not None) != self.has_html:
            return None  # another shape than this skeleton's
        text_cte, text_body = _encode_body(text)
        html_cte, html_body = _encode_body(html) if html is not None else (b"", b"")
        probe = self._probe
        if (probe is None or probe in text_body or probe in html_body) and any(
                boundary in body for boundary in self.boundaries for body in (text_body, html_body)):
            return None
        values = {
            "TO": _address_header(to, self.utf8, to_spec),
            "SUBJECT": _subject(subject),
            "DATE": format_datetime(date).encode() if date is not None else _date_now(),
            "MSGID": message_id.encode(),
            "TEXTCTE": text_cte, "TEXT": text_body, "HTMLCTE": html_cte, "HTML": html_body,
        }
        data: bytes = self._format % tuple([values[name] for name in self._order])
        # Only a 7bit body can start a line with a dot (base64 has none).
        if self._wire and not (text_cte == b"7bit" and (text_body[:1] == b"." or b"\n." in text_body)) \
                and not (html_cte == b"7bit" and (html_body[:1] == b"." or b"\n." in html_body)):
            return WireReady(data)
        return data


class SkeletonCache:
    """Skeletons for pre-composed :class:`Message` objects, one per shape of a batch.

    Messages that share sender, Cc, Reply-To, extra headers and which bodies they have share
    a skeleton; To (one address), Subject, Date, Message-ID and the bodies are slots.
    :meth:`compose` answers ``None`` for what it cannot do exactly as the stdlib would
    (attachments, inline images, several To addresses, a Bcc or To needing SMTPUTF8 when the
    skeleton does not, a body holding a boundary): the caller then composes with the stdlib.
    """

    def __init__(self, limit: int = 64) -> None:
        self.limit = limit
        self._skeletons: dict[tuple[object, ...], Skeleton] = {}

    def compose(self, message: Message, message_id: str, *, parsed: ParsedAddresses | None = None,
                utf8: bool | None = None, to_spec: str | None = None) -> bytes | None:
        """The message's bytes, or ``None``. ``parsed``, ``utf8`` and ``to_spec`` are
        ``message.check()``, ``message.needs_smtputf8()`` and the To address's ``addr_spec``
        when the caller has them already."""
        if message.attachments or message.inline or (message.text is None and message.html is None):
            return None
        if parsed is None:
            parsed = message.check()
        if len(parsed.to) != 1:
            return None
        cc = tuple(map(str, parsed.cc)) if parsed.cc else ()
        key = (message.sender, cc, tuple(message.reply_to) if message.reply_to else (),
               tuple(message.headers.items()) if message.headers else (),
               message.text is not None, message.html is not None)
        skeleton = self._skeletons.get(key)
        if skeleton is None:
            if len(self._skeletons) >= self.limit:
                return None
            prototype = replace(message, to=["slot@slot.invalid"], cc=list(cc), bcc=[], subject="s",
                                message_id=None, date=None)
            skeleton = Skeleton(prototype, keep_cc=True)
            self._skeletons[key] = skeleton
        if (message.needs_smtputf8() if utf8 is None else utf8) != skeleton.utf8:
            return None
        return skeleton.fill(to=parsed.to[0], subject=message.subject, message_id=message_id,
                             text=message.text, html=message.html, date=message.date, to_spec=to_spec)


def _common_start(items: list[bytes]) -> bytes:
    if not items:
        return b""
    low, high = min(items), max(items)  # what the extremes share, all share
    size = 0
    while size < min(len(low), len(high)) and low[size] == high[size]:
        size += 1
    return low[:size]


_DATE_CACHE: list[tuple[int, bytes]] = [(0, b"")]


def _date_now() -> bytes:
    """The Date header of this second: formatting it cost ~15 µs, and a batch sends hundreds
    of messages a second."""
    second = int(time.time())
    cached_second, value = _DATE_CACHE[0]
    if cached_second != second:
        value = format_datetime(dt.datetime.fromtimestamp(second, dt.UTC).astimezone()).encode()
        _DATE_CACHE[0] = (second, value)
    return value


def _address_header(address: Address, utf8: bool, spec: str | None = None) -> bytes:
    name = address.display_name
    if spec is None:
        spec = address.addr_spec
    if not name:
        return spec.encode()
    if _ATEXT_NAME.match(name) and len(name) < 60:
        return f"{name} <{spec}>".encode()
    if _PLAIN_NAME.match(name) and len(name) < 60:
        return f'"{name}" <{spec}>'.encode()
    # Quoting, RFC 2047 and folding rules: let the stdlib do this one header.
    policy = email.policy.SMTPUTF8 if utf8 else email.policy.SMTP
    message = EmailMessage(policy=policy)
    message["To"] = address
    folded: str = message["To"].fold(policy=policy)
    return folded[len("To: "):].rstrip("\r\n").encode()


def _subject(subject: str) -> bytes:
    check_header_value("Subject", subject)
    if subject.isascii() and len(subject) <= 68:
        return subject.encode()
    message = EmailMessage(policy=email.policy.SMTP)
    message["Subject"] = subject
    folded: str = message["Subject"].fold(policy=email.policy.SMTP)
    return folded[len("Subject: "):].rstrip("\r\n").encode()


def _encode_body(body: str) -> tuple[bytes, bytes]:
    # 7bit: ASCII, no CR, every line under 990 octets (str.isascii is a flag lookup). A body
    # holding a slot marker anywhere goes base64 (stricter than needed, and one scan).
    if body.isascii() and "\r" not in body and _MARK_PREFIX not in body \
            and (len(body) < 989 or max(map(len, body.split("\n"))) < 990):
        data = body.encode("ascii")
        return b"7bit", (data[:-1] if data.endswith(b"\n") else data).replace(b"\n", b"\r\n")
    data = body.encode("utf-8")
    if not data.endswith(b"\n"):
        data += b"\n"
    encoded = base64.encodebytes(data)
    return b"base64", encoded[:-1].replace(b"\n", b"\r\n")
