"""The outbox journal: SQLite, one row per message, ``queued -> sending -> sent | failed``.

The rules that make a killed run safe to start again:

* a message is marked ``sending`` (committed) before its DATA goes out, and ``sent``
  (committed) as soon as the server's 250 reply arrives;
* on a new run, ``sent`` and ``failed`` rows are skipped, ``queued`` rows are sent, and
  ``sending`` rows (in flight when the last run died: the server may or may not have taken
  them) are sent again. Only those can repeat; :attr:`Outbox.in_flight_at_start` counts them.

WAL mode with ``synchronous=NORMAL`` survives ``kill -9`` of the process (the OS still
holds the pages) at a fraction of the cost of a full sync per commit.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fivefold._common.errors import UsageError

STATES = ("queued", "sending", "sent", "failed")


@dataclass(frozen=True, slots=True)
class Finished:
    key: str
    sent: bool
    accepted: list[str]
    refused: dict[str, str]
    error: str | None
SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    key TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'sending', 'sent', 'failed')),
    message_id TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    accepted TEXT,
    refused TEXT,
    error TEXT,
    updated REAL NOT NULL
);
-- An index on state made every state change update it too; the counts it served run once
-- per batch, and a scan of the table is fast enough for them.
DROP INDEX IF EXISTS outbox_state;
"""


class Outbox:
    """A journal of one batch; ``path=None`` keeps it in memory (no resume)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        target = str(path) if path is not None else ":memory:"
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(target, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise UsageError(f"outbox {path}: not a usable SQLite journal ({exc})") from None
        self.in_flight_at_start = self.count("sending")
        self._rowids: dict[str, int] = {}  # key -> rowid, so updates need no key lookup

    def close(self) -> None:
        self.db.close()

    def count(self, state: str) -> int:
        row = self.db.execute("SELECT COUNT(*) FROM outbox WHERE state = ?", (state,)).fetchone()
        return int(row[0])

    def counts(self) -> dict[str, int]:
        rows = self.db.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state").fetchall()
        out = dict.fromkeys(STATES, 0)
        out.update({state: int(n) for state, n in rows})
        return out

    def enqueue(self, items: Iterable[tuple[str, str]]) -> dict[str, tuple[str, str | None]]:
        """Adds ``(key, message_id)`` rows not yet known; returns every key's (state, message_id)."""
        now = time.time()
        rows = list(items)
        self.db.execute("BEGIN")
        try:
            self.db.executemany(
                "INSERT OR IGNORE INTO outbox (key, seq, state, message_id, updated) "
                "VALUES (?, ?, 'queued', ?, ?)",
                [(key, seq, message_id, now) for seq, (key, message_id) in enumerate(rows)],
            )
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        known: dict[str, tuple[str, str | None]] = {}
        stored = self.db.execute("SELECT rowid, key, state, message_id FROM outbox")
        for rowid, key, state, message_id in stored:
            known[key] = (state, message_id)
            self._rowids[key] = rowid
        return known

    def transition(self, *, done: Finished | None, sending: str | None) -> None:
        """Records one finished message and marks the next as sending, in one commit.

        One transaction instead of two halves the journal's cost per message; the order of
        events is unchanged (the next message's DATA starts only after this returns).
        """
        if done is None and sending is None:
            return
        now = time.time()
        if done is None:
            assert sending is not None
            self.mark_sending(sending)
            return
        # One statement, hence one implicit transaction, updates both rows.
        self.db.execute(
            "UPDATE outbox SET "
            "state = CASE WHEN key = ? THEN ? ELSE 'sending' END, "
            "accepted = CASE WHEN key = ? THEN ? ELSE accepted END, "
            "refused = CASE WHEN key = ? THEN ? ELSE refused END, "
            "error = CASE WHEN key = ? THEN ? ELSE error END, "
            "attempts = attempts + (key IS ?), updated = ? "
            "WHERE key IN (?, ?)",
            (done.key, "sent" if done.sent else "failed", done.key, json.dumps(done.accepted),
             done.key, json.dumps(done.refused, ensure_ascii=False), done.key, done.error,
             sending, now, done.key, sending),
        )

    def transitions(self, items: list[tuple[Finished | None, str | None]]) -> None:
        """Several :meth:`transition` calls in one transaction (one WAL commit for all)."""
        if len(items) == 1:
            self.transition(done=items[0][0], sending=items[0][1])
            return
        now = time.time()
        # A key is never both finished and started in one group (a worker waits for the commit
        # of "sending" before its DATA), so the two kinds can go as two batched statements.
        # By rowid (the table's own b-tree; every key has one once enqueued), else by key.
        rowids = self._rowids
        where = "rowid" if all(k in rowids for k in self._keys(items)) else "key"
        ref = rowids.__getitem__ if where == "rowid" else str
        finished = [("sent" if done.sent else "failed", _json_list(done.accepted),
                     json.dumps(done.refused, ensure_ascii=False) if done.refused else "{}", done.error, now,
                     ref(done.key))
                    for done, _ in items if done is not None]
        started = [(now, ref(key)) for _, key in items if key is not None]
        self.db.execute("BEGIN")
        try:
            self.db.executemany("UPDATE outbox SET state = ?, accepted = ?, refused = ?, error = ?, "
                                f"updated = ? WHERE {where} = ?", finished)
            self.db.executemany("UPDATE outbox SET state = 'sending', attempts = attempts + 1, updated = ? "
                                f"WHERE {where} = ?", started)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    @staticmethod
    def _keys(items: list[tuple[Finished | None, str | None]]) -> list[str]:
        return [key for done, sending in items for key in (done.key if done else None, sending) if key]

    def mark_sending(self, key: str) -> None:
        self.db.execute("UPDATE outbox SET state = 'sending', attempts = attempts + 1, updated = ? "
                        "WHERE key = ?", (time.time(), key))

    def requeue(self, key: str) -> None:
        """Back to ``queued``: nothing of this message reached a server (no connection)."""
        self.db.execute("UPDATE outbox SET state = 'queued' WHERE key = ?", (key,))

    def requeue_failed(self) -> int:
        cur = self.db.execute("UPDATE outbox SET state = 'queued', error = NULL WHERE state = 'failed'")
        return int(cur.rowcount)

    def rows(self, state: str | None = None) -> list[dict[str, Any]]:
        query = "SELECT key, state, message_id, attempts, accepted, refused, error FROM outbox"
        params: tuple[Any, ...] = ()
        if state is not None:
            query += " WHERE state = ?"
            params = (state,)
        out = []
        records = self.db.execute(query + " ORDER BY seq", params)
        for key, st, message_id, attempts, accepted, refused, error in records:
            out.append({"key": key, "state": st, "message_id": message_id, "attempts": attempts,
                        "accepted": json.loads(accepted) if accepted else [],
                        "refused": json.loads(refused) if refused else {}, "error": error})
        return out


def _json_list(items: list[str]) -> str:
    """``json.dumps(items)``, joined directly when no item needs escaping (the usual case)."""
    if all(item.isascii() and item.isprintable() and '"' not in item and "\\" not in item for item in items):
        return '["' + '", "'.join(items) + '"]' if items else "[]"
    return json.dumps(items)


class MemoryJournal:
    """The journal of a batch sent without an outbox file: nothing can resume it, so the
    states live in a dict (an in-memory SQLite database cost ~70 µs per message for nothing),
    and ``send_jobs`` skips the per-message transitions that no one could read back.
    Same methods as :class:`Outbox` that ``send_jobs`` uses."""

    in_flight_at_start = 0

    def __init__(self) -> None:
        self.states: dict[str, tuple[str, str | None]] = {}

    def close(self) -> None:
        pass

    def enqueue(self, items: Iterable[tuple[str, str]]) -> dict[str, tuple[str, str | None]]:
        for key, message_id in items:
            self.states.setdefault(key, ("queued", message_id))
        return dict(self.states)

    def transition(self, *, done: Finished | None, sending: str | None) -> None:
        if done is not None:
            self.states[done.key] = ("sent" if done.sent else "failed", self.states[done.key][1])
        if sending is not None:
            self.states[sending] = ("sending", self.states[sending][1])

    def transitions(self, items: list[tuple[Finished | None, str | None]]) -> None:
        for done, sending in items:
            self.transition(done=done, sending=sending)

    def requeue(self, key: str) -> None:
        self.states[key] = ("queued", self.states[key][1])

    def requeue_failed(self) -> int:
        failed = [key for key, (state, _) in self.states.items() if state == "failed"]
        for key in failed:
            self.requeue(key)
        return len(failed)
