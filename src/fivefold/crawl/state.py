"""Crawl state: the frontier (queued / in flight / done / failed, attempts, not-before) and the
download records, behind one async interface with a SQLite and a Redis implementation.

The state store is the single source of truth for resuming: a URL is ``done`` only in the
same transaction that records what it produced, and a file is renamed into its final name
only after its name is reserved (``pending``) in the store, so a crash at any instant leaves
either nothing or something :meth:`State.pending_files` lets the next run finish.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from fivefold.crawl.manifest import Row, compact_json

Kind = Literal["page", "media"]
QUEUED, IN_FLIGHT, DONE, FAILED = 0, 1, 2, 3


@dataclass(slots=True)
class Item:
    """One URL in the frontier and what the crawl knows about where it came from."""

    url: str
    kind: Kind
    depth: int = 0
    meta: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0
    index: int = 0

    def meta_json(self) -> str:
        return compact_json(self.meta) if self.meta else ""


class ReservationBusy(Exception):
    """Raised by :meth:`State.reserve`: another worker holds these bytes' reservation; ask again
    in ``wait`` seconds (it will be stored, or its worker's lease will have run out)."""

    def __init__(self, path: str, wait: float) -> None:
        super().__init__(path)
        self.wait = wait


@dataclass(slots=True)
class Pending:
    """A file whose name was reserved but whose rename may or may not have happened."""

    sha256: str
    path: str
    row: Row
    depth: int


@dataclass(slots=True)
class Counts:
    queued: int = 0
    in_flight: int = 0
    done: int = 0
    failed: int = 0
    stored: int = 0
    duplicate: int = 0
    failed_files: int = 0
    stored_bytes: int = 0


class State(abc.ABC):
    """The frontier and the records; every method is safe to call from one event loop."""

    @abc.abstractmethod
    async def recover(self) -> int:
        """Puts in-flight URLs back in the queue (a previous run died); returns how many."""

    @abc.abstractmethod
    async def add(self, items: list[Item]) -> int:
        """Queues the URLs never seen before; returns how many were new."""

    @abc.abstractmethod
    async def claim(self, limit: int, now: float, *, media_only: bool = False) -> list[Item]:
        """Up to ``limit`` queued URLs whose not-before time has come, now in flight."""

    async def claim_urls(self, urls: list[str], now: float) -> list[Item]:
        """These queued URLs, now in flight, if the store can claim by URL (an optional fast
        path for the crawl's critical path: the next index page); ``[]`` leaves them queued."""
        return []

    @abc.abstractmethod
    async def next_due(self) -> float | None:
        """The earliest not-before time in the queue, or ``None`` when the queue is empty."""

    @abc.abstractmethod
    async def outstanding(self) -> int:
        """Queued plus in-flight URLs, across every worker sharing this state."""

    @abc.abstractmethod
    async def done(self, item: Item) -> None:
        """A page was fetched and its links queued."""

    @abc.abstractmethod
    async def retry(self, item: Item, not_before: float, error: str) -> None:
        """Back to the queue, not to be claimed before ``not_before``."""

    @abc.abstractmethod
    async def fail(self, item: Item, error: str, row: Row | None = None) -> str | None:
        """Failed for good; ``row`` (a media URL's failed manifest row) is recorded with it and
        returned serialised, for the manifest."""

    @abc.abstractmethod
    async def reserve(self, sha256: str, names: Iterable[str], row: Row, depth: int) -> tuple[str, bool]:
        """``(path, True)``: the first free name of ``names`` is now pending for these bytes;
        ``(path, False)``: these bytes are already stored (or pending in this process) at
        ``path``; :class:`ReservationBusy`: another worker is storing them right now."""

    @abc.abstractmethod
    async def commit(self, item: Item, row: Row) -> str:
        """Records ``row``, marks its file stored (when it is the first copy), marks ``item`` done;
        returns the row serialised as recorded (the manifest line: each row is encoded once)."""

    @abc.abstractmethod
    async def pending_files(self) -> list[Pending]:
        """Reserved names whose outcome a crash left unknown."""

    @abc.abstractmethod
    async def drop_pending(self, sha256: str) -> None:
        """Forgets a reservation whose file never reached its final name."""

    @abc.abstractmethod
    async def rows(self) -> list[str]:
        """Every manifest row, serialised, in recording order."""

    @abc.abstractmethod
    async def failures(self) -> list[dict[str, Any]]:
        """Every URL that failed for good, with its reason."""

    @abc.abstractmethod
    async def counts(self) -> Counts:
        """Totals for the summary."""

    @abc.abstractmethod
    async def restart(self) -> None:
        """Forgets pages and unfinished URLs so the crawl starts over, keeping stored files."""

    @abc.abstractmethod
    async def release(self, items: list[Item]) -> None:
        """Claimed but never started (the run is stopping): back to the queue as they were."""

    @abc.abstractmethod
    async def forget(self, urls: Iterable[str]) -> None:
        """Removes these URLs from the frontier, as if never added (a bad start URL)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Releases connections."""
