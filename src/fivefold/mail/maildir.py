"""Reading a capture Maildir back: ``fivefold mail list`` and ``fivefold mail show``."""

from __future__ import annotations

import email
import email.policy
import json
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from fivefold._common.errors import UsageError
from fivefold.mail.server import ENVELOPES


@dataclass(frozen=True)
class Entry:
    key: str
    path: Path
    date: str
    sender: str
    to: str
    subject: str
    size: int
    rcpt_tos: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "path": str(self.path), "date": self.date, "from": self.sender,
                "to": self.to, "subject": self.subject, "size": self.size,
                "envelope_recipients": list(self.rcpt_tos)}


def _files(maildir: Path) -> list[Path]:
    if not (maildir / "new").is_dir() and not (maildir / "cur").is_dir():
        raise UsageError(f"{maildir}: not a Maildir (no new/ or cur/)")
    files = [p for sub in ("new", "cur") if (maildir / sub).is_dir() for p in (maildir / sub).iterdir()
             if p.is_file()]
    # Maildir names start with the delivery time, then a per-process counter: sort by both.
    return sorted(files, key=lambda p: (p.stat().st_mtime, p.name))


def _envelopes(maildir: Path) -> dict[str, tuple[str, ...]]:
    path = maildir / ENVELOPES
    out: dict[str, tuple[str, ...]] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                item = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a crash of the server: skip it
            out[item["key"]] = tuple(item.get("rcpt_tos", ()))
    return out


def _parse_headers(path: Path) -> EmailMessage:
    with path.open("rb") as handle:
        head = b""
        for line in handle:
            head += line
            if line in (b"\r\n", b"\n") or len(head) > 256 * 1024:
                break
    parsed = email.message_from_bytes(head, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def list_messages(maildir: Path) -> list[Entry]:
    envelopes = _envelopes(maildir)
    entries: list[Entry] = []
    for path in _files(maildir):
        key = path.name.split(":")[0]
        headers = _parse_headers(path)
        entries.append(Entry(key=key, path=path, date=str(headers.get("Date", "")),
                             sender=str(headers.get("From", "")), to=str(headers.get("To", "")),
                             subject=str(headers.get("Subject", "")), size=path.stat().st_size,
                             rcpt_tos=envelopes.get(key, ())))
    return entries


def find(maildir: Path, ref: str) -> Entry:
    """A message by key, key prefix, or 1-based position in the listing (``last``)."""
    entries = list_messages(maildir)
    if ref == "last":
        ref = "-1"
    if ref.lstrip("-").isdigit():
        index = int(ref)
        position = index - 1 if index > 0 else index
        if index == 0 or not -len(entries) <= position < len(entries):
            raise UsageError(f"{maildir}: no message number {ref} ({len(entries)} stored)")
        return entries[position]
    matches = [e for e in entries if e.key.startswith(ref)]
    if len(matches) != 1:
        raise UsageError(f"{maildir}: {'no' if not matches else 'more than one'} message matches {ref!r}")
    return matches[0]


def load(entry: Entry) -> EmailMessage:
    parsed = email.message_from_bytes(entry.path.read_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def describe(message: EmailMessage) -> dict[str, Any]:
    """Headers, the text body and one line per MIME part (type, name, size)."""
    parts: list[dict[str, Any]] = []
    for part in message.walk():
        if part.is_multipart():
            parts.append({"type": part.get_content_type()})
            continue
        payload = part.get_payload(decode=True)
        parts.append({"type": part.get_content_type(), "filename": part.get_filename(),
                      "disposition": part.get_content_disposition(), "content_id": part.get("Content-ID"),
                      "size": len(payload) if isinstance(payload, bytes) else 0})
    body = message.get_body(preferencelist=("plain", "html"))
    text = body.get_content().replace("\r\n", "\n") if body is not None else ""
    headers = {name: str(value) for name, value in message.items()
               if name.lower() in ("from", "to", "cc", "reply-to", "subject", "date", "message-id",
                                   "dkim-signature")}
    return {"headers": headers, "text": text, "parts": parts}
