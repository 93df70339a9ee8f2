"""The output directory: temporary files, final names, and crash recovery.

Layout: stored files sit flat in the output directory; ``.fivefold-crawl/`` holds the state
database and ``tmp/`` (downloads in progress). A download becomes a final name only by
``os.replace`` from ``tmp/``, on the same file system, so a final name never holds a partial
file. The rename happens after the name is reserved in the state store; on the next run a
reservation whose file is present with the right hash is completed, any other is dropped.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

from fivefold._common.errors import FivefoldError
from fivefold.crawl.manifest import FAILURES, MANIFEST, ManifestWriter
from fivefold.crawl.names import check_name, numbered, render_name, safe_name, url_stem
from fivefold.crawl.state import Item, State

STATE_DIR = ".fivefold-crawl"
TEMP_SUFFIX = ".part"


class Store:
    def __init__(self, out_dir: Path) -> None:
        self.root = out_dir
        self.state_dir = out_dir / STATE_DIR
        self.temp_dir = self.state_dir / "tmp"
        self.manifest = ManifestWriter(out_dir, MANIFEST)
        # Temporary names: a random prefix per run (workers sharing a directory through Redis
        # never collide) and a counter, instead of a system call for randomness per file.
        self._temp_prefix = os.path.join(self.temp_dir, f"{secrets.token_hex(6)}-")
        self._temp_count = itertools.count()

    def prepare(self) -> None:
        """Creates the directories and proves they are writable, before any state is touched."""
        try:
            self.temp_dir.mkdir(parents=True, exist_ok=True)
            probe = self.temp_dir / f"probe-{os.getpid()}-{secrets.token_hex(4)}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise FivefoldError(f"output directory {self.root} is not writable: {reason}") from None

    def clean_temp(self, older_than: float = 0.0) -> int:
        """Removes partial downloads a killed run left behind.

        With a shared (Redis) frontier other live workers write here too, so only files idle
        for ``older_than`` seconds are taken for abandoned.
        """
        removed = 0
        cutoff = time.time() - older_than
        for path in self.temp_dir.glob(f"*{TEMP_SUFFIX}"):
            try:
                if older_than and path.stat().st_mtime > cutoff:
                    continue
                path.unlink()
            except FileNotFoundError:
                continue
            removed += 1
        return removed

    def temp_path(self) -> str:
        return f"{self._temp_prefix}{next(self._temp_count)}{TEMP_SUFFIX}"

    def candidate_names(self, template: str, item: Item, sha256: str, ext: str,
                        title: str | None, host: str) -> Iterator[str]:
        """Names for a new file, best first, skipping ones already on disk."""
        stem = url_stem(item.url)
        if template == "{title}{ext}":  # the default: skip the formatter
            raw = (title or stem) + ext
        else:
            raw = render_name(template, {
                "title": title or stem, "stem": stem, "sha256": sha256, "ext": ext,
                "index": item.index, "host": host, "page": url_stem(str(item.meta.get("page") or "")),
            })
        name = safe_name(raw, ext, fallback=stem or sha256[:16])
        root = str(self.root)
        for number in range(1, 100_000):
            candidate = numbered(name, number)
            check_name(candidate)
            # Nothing exists under this name (not even a link), so it resolves inside the root.
            if not os.path.lexists(os.path.join(root, candidate)):
                yield candidate

    def place(self, temp: str, name: str) -> None:
        check_name(name)
        target = os.path.join(self.root, name)
        if os.path.islink(target):  # planted after the name was chosen: never write through it
            raise ValueError(f"file name {name!r} is a symbolic link")
        os.replace(temp, target)

    async def recover(self, state: State) -> int:
        """Finishes or drops the reservations a crash interrupted; returns how many were finished."""
        finished = 0
        for pending in await state.pending_files():
            path = self.root / pending.path
            if path.is_file() and _sha256(path) == pending.sha256:
                pending.row.path = pending.path
                await state.commit(Item(pending.row.url, "media", pending.depth), pending.row)
                finished += 1
            else:
                await state.drop_pending(pending.sha256)
        return finished

    async def rewrite_reports(self, state: State) -> None:
        self.manifest.rewrite(await state.rows())
        failures = ManifestWriter(self.root, FAILURES)
        import json

        failures.rewrite(json.dumps(f, ensure_ascii=False) for f in await state.failures())

    def append(self, line: str) -> None:
        """Appends one manifest row, already serialised (:meth:`Row.to_json`)."""
        self.manifest.append(line)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
