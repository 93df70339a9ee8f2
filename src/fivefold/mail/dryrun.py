"""Dry run: each message as a ``.eml`` file (exactly the bytes that would go on the wire)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from fivefold._common.files import write_bytes_atomic
from fivefold.mail.message import Message

if TYPE_CHECKING:
    from fivefold.mail.dkim import DkimSigner


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9@._-]+", "_", text)[:60] or "message"


def write_eml(message: Message, directory: Path, *, index: int | None = None,
              dkim: DkimSigner | None = None) -> Path:
    from fivefold.mail.sending import prepare

    prepared = prepare(message, dkim)
    directory.mkdir(parents=True, exist_ok=True)
    if index is None:
        index = len(list(directory.glob("*.eml"))) + 1
    path = directory / f"{index:05d}-{_slug(prepared.recipients[0])}.eml"
    write_bytes_atomic(path, prepared.payload)
    return path
