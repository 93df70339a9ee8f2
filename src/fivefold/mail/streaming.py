"""Large attachments streamed from disk: the message is never whole in memory.

The stdlib composes a message whose large attachments are empty stand-ins; their parts are
then given a marker instead of a payload, and the serialised bytes are cut at the markers.
Sending writes the small pieces and, in between, each file base64-encoded a block at a
time. Peak memory is the skeleton plus one block, whatever the attachment size (the
alternative, ``as_bytes()`` plus the SMTP client's dot-stuffing copies, holds about eight
times the file). Base64 lines never start with a dot, so only the pieces need dot-stuffing.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from email.message import EmailMessage

from fivefold.mail.message import Attachment, Message

STREAM_THRESHOLD = 1 << 20  # attachments above 1 MiB are streamed
_BLOCK = 57 * 1024 * 4  # a multiple of 57 input bytes = whole 76-character base64 lines
_MARK = "ZZfivefoldstream{}ZZ"
LEADING_DOT = re.compile(rb"(?m)^\.")


@dataclass
class StreamedMessage:
    pieces: list[bytes]
    sources: list[Attachment]
    message_id: str

    @property
    def size(self) -> int:
        total = sum(len(p) for p in self.pieces)
        for source in self.sources:
            n = _length(source)
            lines = (n + 56) // 57
            total += 4 * ((n + 2) // 3) + 2 * lines
        return total

    def joined(self) -> bytes:
        """The whole message in memory, not dot-stuffed (for dry runs and tests)."""
        out: list[bytes] = []
        for index, piece in enumerate(self.pieces):
            out.append(piece)
            if index < len(self.sources):
                out.extend(_encoded(self.sources[index]))
        return b"".join(out)

    def chunks(self) -> Iterator[bytes]:
        """Wire bytes, CRLF line ends, dot-stuffed, without the final ``.``."""
        for index, piece in enumerate(self.pieces):
            yield LEADING_DOT.sub(b"..", piece)
            if index < len(self.sources):
                yield from _encoded(self.sources[index])


def _length(source: Attachment) -> int:
    if source.data is not None:
        return len(source.data)
    assert source.path is not None
    return source.path.stat().st_size


def _encoded(source: Attachment) -> Iterator[bytes]:
    if source.data is not None:
        view = memoryview(source.data)
        for start in range(0, len(view), _BLOCK):
            yield _b64_lines(bytes(view[start:start + _BLOCK]))
        return
    assert source.path is not None
    with source.path.open("rb") as handle:
        while True:
            block = handle.read(_BLOCK)
            if not block:
                return
            yield _b64_lines(block)


def _b64_lines(block: bytes) -> bytes:
    return base64.encodebytes(block).replace(b"\n", b"\r\n")


def is_large(item: Attachment) -> bool:
    try:
        return _length(item) > STREAM_THRESHOLD
    except OSError:
        return False


def wants_streaming(message: Message) -> bool:
    return any(is_large(item) for item in message.attachments)


def compose_streamed(message: Message) -> StreamedMessage:
    """The message as pieces around its large attachments (read later, block by block)."""
    large = [item for item in message.attachments if is_large(item)]
    stand_ins: list[Attachment] = []
    marks: list[str] = []
    for item in message.attachments:
        if item in large:
            mark = _MARK.format(len(marks))
            marks.append(mark)
            maintype, subtype = item.mime_type()
            stand_ins.append(Attachment(item.filename, data=mark.encode(),
                                        content_type=f"{maintype}/{subtype}"))
        else:
            stand_ins.append(item)
    composed = replace(message, attachments=stand_ins).compose()
    _mark_payloads(composed, marks)
    raw = composed.as_bytes()
    pieces: list[bytes] = []
    position = 0
    for mark in marks:
        token = mark.encode() + b"\r\n"
        at = raw.index(token, position)
        pieces.append(raw[position:at])
        position = at + len(token)
    pieces.append(raw[position:])
    return StreamedMessage(pieces, large, str(composed["Message-ID"]))


def _mark_payloads(composed: EmailMessage, marks: list[str]) -> None:
    wanted = {base64.b64encode(mark.encode()).decode(): mark for mark in marks}
    for part in composed.walk():
        if part.is_multipart():
            continue
        payload = part.get_payload()
        if isinstance(payload, str) and payload.strip() in wanted:
            part.set_payload(wanted[payload.strip()] + "\r\n")
