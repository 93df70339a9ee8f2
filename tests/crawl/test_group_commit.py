"""Group commit in the SQLite state: batched writes, and the two writes that must reach disk
before the crawl acts on them (claims and name reservations)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from fivefold.crawl.manifest import Row
from fivefold.crawl.sqlite_state import SqliteState
from fivefold.crawl.state import IN_FLIGHT, Item


def _other(path: Path, sql: str) -> list[tuple[object, ...]]:
    """What another process would see now (a kill -9 keeps only what is committed)."""
    db = sqlite3.connect(path)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def test_claims_and_reservations_are_durable_before_they_return(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"

    async def main() -> None:
        state = SqliteState(path)
        await state.add([Item("http://h/a.jpg", "media", 1), Item("http://h/page/2", "page", 0, {"next": 1}),
                         Item("http://h/item/1", "page", 1)])
        claimed = await state.claim(1, 1e18)
        assert [i.url for i in claimed] == ["http://h/a.jpg"]
        assert _other(path, f"SELECT url FROM urls WHERE state = {IN_FLIGHT}") == [("http://h/a.jpg",)]

        # The next index page is claimed by URL, ahead of older queued pages, and durably.
        urgent = await state.claim_urls(["http://h/page/2"], 1e18)
        assert [i.meta for i in urgent] == [{"next": 1}]
        assert sorted(_other(path, f"SELECT url FROM urls WHERE state = {IN_FLIGHT}")) == [
            ("http://h/a.jpg",), ("http://h/page/2",)]

        # A page's completion is batched: not yet visible to another connection...
        await state.done(urgent[0])
        assert ("http://h/page/2",) in _other(path, f"SELECT url FROM urls WHERE state = {IN_FLIGHT}")

        # ...but a reservation is on disk before reserve() returns (and carries its path).
        row = Row("http://h/a.jpg", "http://h/item/0", "A", sha256="ab" * 32, bytes=3)
        name, is_new = await state.reserve("ab" * 32, iter(["a.jpg"]), row, 1)
        assert (name, is_new) == ("a.jpg", True)
        stored = _other(path, "SELECT path, stored, row FROM files")
        assert [(p, s) for p, s, _ in stored] == [("a.jpg", 0)]
        assert Row.from_json(str(stored[0][2])).path == "a.jpg"
        # The same commit took the batched page completion with it.
        assert _other(path, f"SELECT url FROM urls WHERE state = {IN_FLIGHT}") == [("http://h/a.jpg",)]

        await state.commit(claimed[0], row)
        await asyncio.sleep(0.2)  # the batch is committed within FLUSH_S without anyone asking
        assert _other(path, "SELECT path, stored FROM files") == [("a.jpg", 1)]
        assert _other(path, "SELECT count(*) FROM records") == [(1,)]
        await state.close()

    asyncio.run(main())
