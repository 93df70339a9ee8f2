"""The manifest: one JSON row per media URL, the contract with readers of an output directory.

``manifest.jsonl`` in the output directory holds one object per line, in the order the rows
were recorded. The keys below are stable (documented in ``docs/crawl.md``); readers should
ignore keys they do not know. ``path`` is relative to the output directory, POSIX style, and
is ``null`` for a failed row. A duplicate row (same bytes as a file already stored from
another URL) points at the stored file's path.

The state store is the source of truth: rows are appended as they are recorded (so a reader
can follow a crawl in progress) and the whole file is rewritten from the store, atomically,
when a crawl starts and ends, so a crash never leaves a torn or repeated row behind.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from fivefold._common.files import atomic_path

MANIFEST = "manifest.jsonl"
FAILURES = "failures.jsonl"

Status = Literal["stored", "duplicate", "failed"]
# One encoder for every row: json.dumps with options builds a new encoder on each call.
compact_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


@dataclass(slots=True)
class Row:
    """One manifest row."""

    url: str
    page: str | None
    title: str | None
    fields: dict[str, str] = field(default_factory=dict)
    path: str | None = None
    sha256: str | None = None
    bytes: int | None = None
    content_type: str | None = None
    status: Status = "stored"
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "url": self.url, "page": self.page, "title": self.title, "fields": self.fields,
            "path": self.path, "sha256": self.sha256, "bytes": self.bytes,
            "content_type": self.content_type, "status": self.status, "error": self.error,
        }

    def to_json(self) -> str:
        return compact_json(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> Row:
        data: dict[str, Any] = json.loads(text)
        known = {key: data[key] for key in cls.__dataclass_fields__ if key in data}
        return cls(**known)


def read_manifest(out_dir: Path) -> list[Row]:
    """Every row of ``out_dir/manifest.jsonl`` (an absent manifest is empty)."""
    path = out_dir / MANIFEST
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as handle:
        return [Row.from_json(line) for line in handle if line.strip()]


class ManifestWriter:
    """Appends rows as they happen; :meth:`rewrite` replaces the file from the store."""

    def __init__(self, out_dir: Path, name: str = MANIFEST) -> None:
        self.path = out_dir / name
        self._handle: Any = None

    def append(self, line: str) -> None:
        """Appends one row serialised by :meth:`Row.to_json`."""
        if self._handle is None:
            # O_APPEND with one write per line keeps lines whole when two workers share a file.
            self._handle = open(self.path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
        self._handle.write(line + "\n")

    def rewrite(self, rows: Iterable[str]) -> None:
        """Atomically replaces the file with ``rows`` (already-serialised JSON lines)."""
        self.close()
        with atomic_path(self.path) as temp, temp.open("w", encoding="utf-8") as handle:
            for line in rows:
                handle.write(line + "\n")

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
