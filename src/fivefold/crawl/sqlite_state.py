"""The default state store: one SQLite database (WAL) inside the output directory.

WAL with ``synchronous=NORMAL`` survives ``kill -9`` of the crawler (committed transactions
are in the WAL, which the OS holds); only a power cut can lose the last commits, and then
the crawl redoes them. Everything runs on the event loop's thread: each call is a few tens
of microseconds, much cheaper than a thread hop.

Group commit: writes go into one open transaction that is committed at most ``FLUSH_S``
later, so a busy crawl pays for one commit per batch, not one per state change. Losing a
batch to ``kill -9`` is harmless: it only holds transitions the next run redoes (a page
fetched again, a retry or failure recorded again, a stored file finished from its
reservation). The two writes that must be on disk before the crawl acts on them are
committed before they return: :meth:`claim` (a request is only sent for a URL recorded in
flight, so re-downloads after a kill never exceed what was in flight) and :meth:`reserve`
(a file is renamed into place only once its reservation is durable); workers reserving in
the same loop tick share one commit.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fivefold.crawl.manifest import Row
from fivefold.crawl.state import DONE, FAILED, IN_FLIGHT, QUEUED, Counts, Item, Pending, State

_SCHEMA = """
CREATE TABLE IF NOT EXISTS urls (
    id INTEGER PRIMARY KEY,
    url TEXT NOT NULL UNIQUE,
    kind INTEGER NOT NULL,
    state INTEGER NOT NULL DEFAULT 0,
    depth INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before REAL NOT NULL DEFAULT 0,
    meta TEXT NOT NULL DEFAULT '',
    error TEXT
);
CREATE INDEX IF NOT EXISTS urls_queue ON urls(kind DESC, id) WHERE state = 0;
CREATE INDEX IF NOT EXISTS urls_inflight ON urls(state) WHERE state = 1;
CREATE TABLE IF NOT EXISTS files (
    sha256 TEXT PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    stored INTEGER NOT NULL DEFAULT 0,
    depth INTEGER NOT NULL DEFAULT 0,
    row TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY,
    url TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    bytes INTEGER,
    row TEXT NOT NULL
);
"""
_KINDS = {"page": 0, "media": 1}
_KIND_NAMES = {0: "page", 1: "media"}
FLUSH_S = 0.05  # the longest a state change waits in an open transaction


class SqliteState(State):
    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA busy_timeout=10000")
        self.db.execute("PRAGMA cache_size=-8000")  # 8 MB: bounds RSS with millions of queued URLs
        self.db.executescript(_SCHEMA)
        self._in_tx = False
        self._flush_handle: asyncio.TimerHandle | None = None
        self._durable: asyncio.Future[None] | None = None

    def _tx(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        self._write()
        return self.db.execute(sql, params)

    def _read(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        return self.db.execute(sql, params)  # sees the open batch: same connection

    def _write(self) -> None:
        """Opens the batch transaction if none is open, and schedules its commit."""
        if self._in_tx:
            return
        self.db.execute("BEGIN")
        self._in_tx = True
        try:
            self._flush_handle = asyncio.get_running_loop().call_later(FLUSH_S, self._flush)
        except RuntimeError:  # no loop (a synchronous caller): it commits explicitly
            self._flush_handle = None

    def _flush(self) -> None:
        """Commits the batch now and wakes whoever waits for it to be durable."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        waiter, self._durable = self._durable, None
        try:
            if self._in_tx:
                self.db.execute("COMMIT")
                self._in_tx = False
        except Exception as exc:
            if waiter is not None and not waiter.done():
                waiter.set_exception(exc)
                return
            raise
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _flushed(self) -> None:
        """Returns once everything written so far is committed; one commit per loop tick."""
        if not self._in_tx:
            return
        if self._durable is None:
            loop = asyncio.get_running_loop()
            self._durable = loop.create_future()
            loop.call_soon(self._flush)
        await asyncio.shield(self._durable)

    async def recover(self) -> int:
        cursor = self._tx(f"UPDATE urls SET state = {QUEUED} WHERE state = {IN_FLIGHT}")
        self._flush()
        return cursor.rowcount

    async def add(self, items: list[Item]) -> int:
        if not items:
            return 0
        before = self.db.total_changes
        self._write()
        self.db.executemany(
            "INSERT OR IGNORE INTO urls (url, kind, depth, meta) VALUES (?, ?, ?, ?)",
            [(i.url, _KINDS[i.kind], i.depth, i.meta_json()) for i in items],
        )
        return self.db.total_changes - before

    async def claim(self, limit: int, now: float, *, media_only: bool = False) -> list[Item]:
        kind = " AND kind = 1" if media_only else ""
        rows = self._tx(
            f"UPDATE urls SET state = {IN_FLIGHT} WHERE id IN (SELECT id FROM urls WHERE state = {QUEUED} "
            f"AND not_before <= ?{kind} ORDER BY kind DESC, id LIMIT ?) "
            "RETURNING id, url, kind, depth, attempts, meta",
            (now, limit),
        ).fetchall()
        return self._claimed(rows)

    async def claim_urls(self, urls: list[str], now: float) -> list[Item]:
        if not urls:
            return []
        marks = ",".join("?" * len(urls))
        rows = self._tx(
            f"UPDATE urls SET state = {IN_FLIGHT} WHERE url IN ({marks}) AND state = {QUEUED} "
            "AND not_before <= ? RETURNING id, url, kind, depth, attempts, meta",
            (*urls, now),
        ).fetchall()
        return self._claimed(rows)

    def _claimed(self, rows: list[Any]) -> list[Item]:
        if rows:
            self._flush()  # in flight on disk before any request goes out
        rows.sort()
        return [
            Item(url, _KIND_NAMES[kind_], depth, json.loads(meta) if meta else {}, attempts, id_)  # type: ignore[arg-type]
            for id_, url, kind_, depth, attempts, meta in rows
        ]

    async def next_due(self) -> float | None:
        row = self._read(f"SELECT min(not_before) FROM urls WHERE state = {QUEUED}").fetchone()
        return None if row[0] is None else float(row[0])

    async def outstanding(self) -> int:
        row = self._read(f"SELECT count(*) FROM urls WHERE state IN ({QUEUED}, {IN_FLIGHT})").fetchone()
        return int(row[0])

    async def done(self, item: Item) -> None:
        self._tx(f"UPDATE urls SET state = {DONE}, attempts = ? WHERE url = ?", (item.attempts, item.url))

    async def retry(self, item: Item, not_before: float, error: str) -> None:
        self._tx(
            f"UPDATE urls SET state = {QUEUED}, attempts = ?, not_before = ?, error = ? WHERE url = ?",
            (item.attempts, not_before, error, item.url),
        )

    async def fail(self, item: Item, error: str, row: Row | None = None) -> str | None:
        # One batch transaction holds both statements, so they land together or not at all.
        self._tx(
            f"UPDATE urls SET state = {FAILED}, attempts = ?, error = ? WHERE url = ?",
            (item.attempts, error, item.url),
        )
        return self._record(row) if row is not None else None

    def _record(self, row: Row) -> str:
        line = row.to_json()
        self._write()
        self.db.execute(
            "INSERT INTO records (url, status, bytes, row) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(url) DO UPDATE SET status = excluded.status, bytes = excluded.bytes, "
            "row = excluded.row",
            (row.url, row.status, row.bytes, line),
        )
        return line

    async def reserve(self, sha256: str, names: Iterable[str], row: Row, depth: int) -> tuple[str, bool]:
        # Most files are new: try the insert first and look the hash up only when it fails.
        for name in names:
            row.path = name  # recovery records the row as it will be once the rename is done
            try:
                self._tx(
                    "INSERT INTO files (sha256, path, depth, row) VALUES (?, ?, ?, ?)",
                    (sha256, name, depth, row.to_json()),
                )
            except sqlite3.IntegrityError:
                found = self._read("SELECT path FROM files WHERE sha256 = ?", (sha256,)).fetchone()
                if found is not None:
                    return str(found[0]), False
                continue  # the name is taken by other bytes: try the next one
            await self._flushed()  # the reservation is on disk before the caller renames
            return name, True
        raise RuntimeError("no free file name")  # callers pass an unbounded-enough list

    async def commit(self, item: Item, row: Row) -> str:
        self._write()
        if row.status == "stored":
            self.db.execute("UPDATE files SET stored = 1 WHERE sha256 = ?", (row.sha256,))
        line = self._record(row)
        self.db.execute(
            f"UPDATE urls SET state = {DONE}, attempts = ? WHERE url = ?", (item.attempts, item.url)
        )
        return line

    async def pending_files(self) -> list[Pending]:
        rows = self._read("SELECT sha256, path, row, depth FROM files WHERE stored = 0").fetchall()
        return [Pending(sha, path, Row.from_json(row), depth) for sha, path, row, depth in rows]

    async def drop_pending(self, sha256: str) -> None:
        self._tx("DELETE FROM files WHERE sha256 = ? AND stored = 0", (sha256,))

    async def rows(self) -> list[str]:
        return [r[0] for r in self._read("SELECT row FROM records ORDER BY seq")]

    async def failures(self) -> list[dict[str, Any]]:
        rows = self._read(f"SELECT url, kind, error, attempts FROM urls WHERE state = {FAILED} ORDER BY id")
        return [{"url": u, "kind": _KIND_NAMES[k], "error": e, "attempts": a} for u, k, e, a in rows]

    async def counts(self) -> Counts:
        counts = Counts()
        for state, number in self._read("SELECT state, count(*) FROM urls GROUP BY state"):
            if state == QUEUED:
                counts.queued = number
            elif state == IN_FLIGHT:
                counts.in_flight = number
            elif state == DONE:
                counts.done = number
            else:
                counts.failed = number
        by_status = self._read("SELECT status, count(*), sum(bytes) FROM records GROUP BY status")
        for status, number, size in by_status:
            if status == "stored":
                counts.stored, counts.stored_bytes = number, int(size or 0)
            elif status == "duplicate":
                counts.duplicate = number
            else:
                counts.failed_files = number
        return counts

    async def restart(self) -> None:
        self._tx("DELETE FROM urls WHERE kind = 0 OR state != ?", (DONE,))
        self.db.execute("DELETE FROM records WHERE status = 'failed'")
        self._flush()

    async def release(self, items: list[Item]) -> None:
        self._write()
        self.db.executemany(f"UPDATE urls SET state = {QUEUED} WHERE url = ? AND state = {IN_FLIGHT}",
                            [(i.url,) for i in items])

    async def forget(self, urls: Iterable[str]) -> None:
        self._write()
        self.db.executemany("DELETE FROM urls WHERE url = ?", [(u,) for u in urls])
        self._flush()

    async def close(self) -> None:
        try:
            self._flush()
        finally:
            self.db.close()
