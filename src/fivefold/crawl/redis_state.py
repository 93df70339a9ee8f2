"""The shared state store: the frontier, seen-set and records in Redis, for several workers.

Every worker (process, machine) runs the same command with the same ``--frontier`` and an
output directory on shared storage. Claims are atomic (Lua), so a URL is in flight at one
worker at a time; file names and content hashes are reserved with ``HSETNX``, so each file
is stored once whoever downloads it.

A claim carries a lease (``Options.lease``, default :data:`LEASE_S`): a worker renews the
leases of everything it holds every third of a lease, and every claim first puts the URLs
whose lease ran out back in the queue, so the work of a worker that died (``kill -9``, a
lost machine) is picked up by the others one lease later. A worker that was only slow may
then see its URL fetched twice; each file is still stored once. Workers' clocks must agree
to well within a lease.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Iterable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from fivefold._common.errors import FivefoldError
from fivefold._common.log import get_logger
from fivefold.crawl.manifest import Row
from fivefold.crawl.state import DONE, FAILED, QUEUED, Counts, Item, Pending, ReservationBusy, State

LEASE_S = 30.0
BUSY_WAIT_S = 2.0  # how long to wait for another worker to finish storing the same bytes
log = get_logger("crawl")

_ADD = """
local new = 0
for i = 1, #ARGV, 3 do
  if redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1]) == 1 then
    if ARGV[i + 2] == 'media' then redis.call('ZADD', KEYS[2], 0, ARGV[i])
    else redis.call('ZADD', KEYS[3], 0, ARGV[i]) end
    new = new + 1
  end
end
return new
"""
# KEYS: media queue, page queue, in-flight, urls. ARGV: now, limit, lease deadline.
# Expired leases first: their URLs go back to their queue (a worker died holding them).
_CLAIM = """
local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[1])
for _, url in ipairs(expired) do
  redis.call('ZREM', KEYS[3], url)
  local raw = redis.call('HGET', KEYS[4], url)
  if raw then
    local queue = KEYS[2]
    if cjson.decode(raw)['k'] == 'media' then queue = KEYS[1] end
    redis.call('ZADD', queue, 0, url)
  end
end
local limit = tonumber(ARGV[2])
local out = {}
for _, queue in ipairs({KEYS[1], KEYS[2]}) do
  local room = limit - #out / 2
  if room <= 0 then break end
  local got = redis.call('ZRANGEBYSCORE', queue, '-inf', ARGV[1], 'LIMIT', 0, room)
  for _, url in ipairs(got) do
    redis.call('ZREM', queue, url)
    redis.call('ZADD', KEYS[3], ARGV[3], url)
    table.insert(out, url)
    table.insert(out, redis.call('HGET', KEYS[4], url))
  end
end
return out
"""
# KEYS: in-flight, urls, media queue, page queue. ARGV: now.
_RECOVER = """
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
for _, url in ipairs(expired) do
  redis.call('ZREM', KEYS[1], url)
  local data = cjson.decode(redis.call('HGET', KEYS[2], url))
  local queue = KEYS[4]
  if data['k'] == 'media' then queue = KEYS[3] end
  redis.call('ZADD', queue, 0, url)
end
return #expired
"""


def _encode(item: Item, state: int = QUEUED, error: str | None = None) -> str:
    return json.dumps({"k": item.kind, "d": item.depth, "m": item.meta, "a": item.attempts, "s": state,
                       "e": error}, ensure_ascii=False, separators=(",", ":"))


def _decode(url: str, text: str) -> tuple[Item, dict[str, Any]]:
    data: dict[str, Any] = json.loads(text)
    return Item(url, data["k"], data["d"], data.get("m") or {}, data.get("a", 0)), data


class RedisState(State):
    def __init__(self, client: Any, crawl_id: str, lease: float = LEASE_S) -> None:
        self.r = client
        self.lease = lease
        self._mine: set[str] = set()  # URLs this worker holds: their leases are renewed
        self._renewer: asyncio.Task[None] | None = None
        prefix = "fivefold:crawl:" + hashlib.sha256(crawl_id.encode()).hexdigest()[:16]
        self.k = {name: f"{prefix}:{name}" for name in (
            "urls", "qmedia", "qpage", "inflight", "failed", "done", "files", "names", "stored",
            "records", "order")}
        self._add = client.register_script(_ADD)
        self._claim = client.register_script(_CLAIM)
        self._recover = client.register_script(_RECOVER)
        self._index = 0

    @classmethod
    async def connect(cls, url: str, crawl_id: str, lease: float = LEASE_S) -> RedisState:
        try:
            client = aioredis.from_url(url, decode_responses=True)
            await client.ping()
        except (RedisError, OSError, ValueError) as exc:
            raise FivefoldError(f"cannot use frontier {url}: {exc}") from None
        state = cls(client, crawl_id, lease)
        state._renewer = asyncio.get_running_loop().create_task(state._renew_leases())
        return state

    async def _renew_leases(self) -> None:
        """Every third of a lease, pushes back the deadline of every URL this worker holds."""
        while True:
            await asyncio.sleep(self.lease / 3)
            held = list(self._mine)
            if not held:
                continue
            deadline = time.time() + self.lease
            try:
                # XX: only URLs still in flight (a finished one must not come back).
                for start in range(0, len(held), 500):
                    await self.r.zadd(self.k["inflight"], dict.fromkeys(held[start:start + 500], deadline),
                                      xx=True)
            except (RedisError, OSError) as exc:  # the next round tries again; the crawl reports errors
                log.warning("cannot renew leases: %s", exc)

    async def recover(self) -> int:
        k = self.k
        return int(await self._recover(keys=[k["inflight"], k["urls"], k["qmedia"], k["qpage"]],
                                       args=[time.time()]))

    async def add(self, items: list[Item]) -> int:
        if not items:
            return 0
        args: list[str] = []
        for item in items:
            args += [item.url, _encode(item), item.kind]
        return int(await self._add(keys=[self.k["urls"], self.k["qmedia"], self.k["qpage"]], args=args))

    async def claim(self, limit: int, now: float, *, media_only: bool = False) -> list[Item]:
        k = self.k
        flat = await self._claim(keys=[k["qmedia"], k["qpage"], k["inflight"], k["urls"]],
                                 args=[now, limit, now + self.lease])
        items = []
        for url, text in zip(flat[::2], flat[1::2], strict=True):
            item, _ = _decode(url, text)
            self._index += 1
            item.index = self._index
            items.append(item)
            self._mine.add(url)
        return items

    async def next_due(self) -> float | None:
        due = []
        for queue in (self.k["qmedia"], self.k["qpage"]):
            first = await self.r.zrange(queue, 0, 0, withscores=True)
            if first:
                due.append(float(first[0][1]))
        return min(due) if due else None

    async def outstanding(self) -> int:
        async with self.r.pipeline(transaction=False) as pipe:
            for name in ("qmedia", "qpage", "inflight"):
                pipe.zcard(self.k[name])
            return int(sum(await pipe.execute()))

    async def done(self, item: Item) -> None:
        self._mine.discard(item.url)  # its lease is no longer renewed
        async with self.r.pipeline(transaction=True) as pipe:
            pipe.hset(self.k["urls"], item.url, _encode(item, DONE))
            pipe.zrem(self.k["inflight"], item.url)
            pipe.incr(self.k["done"])
            await pipe.execute()

    async def retry(self, item: Item, not_before: float, error: str) -> None:
        queue = self.k["qmedia"] if item.kind == "media" else self.k["qpage"]
        self._mine.discard(item.url)  # its lease is no longer renewed
        async with self.r.pipeline(transaction=True) as pipe:
            pipe.hset(self.k["urls"], item.url, _encode(item, QUEUED, error))
            pipe.zrem(self.k["inflight"], item.url)
            pipe.zadd(queue, {item.url: not_before})
            await pipe.execute()

    async def fail(self, item: Item, error: str, row: Row | None = None) -> str | None:
        self._mine.discard(item.url)  # its lease is no longer renewed
        async with self.r.pipeline(transaction=True) as pipe:
            pipe.hset(self.k["urls"], item.url, _encode(item, FAILED, error))
            pipe.zrem(self.k["inflight"], item.url)
            pipe.sadd(self.k["failed"], item.url)
            await pipe.execute()
        return await self._record(row) if row is not None else None

    async def _record(self, row: Row) -> str:
        line = row.to_json()
        if await self.r.hsetnx(self.k["records"], row.url, line):
            await self.r.rpush(self.k["order"], row.url)
        else:
            await self.r.hset(self.k["records"], row.url, line)
        return line

    async def reserve(self, sha256: str, names: Iterable[str], row: Row, depth: int) -> tuple[str, bool]:
        k = self.k
        found = await self.r.hget(k["files"], sha256)
        if found is not None:
            return await self._reserved(sha256, json.loads(found), row, depth)
        for name in names:
            if not await self.r.hsetnx(k["names"], name, sha256):
                continue
            entry = json.dumps({"path": name, "depth": depth, "row": row.to_json(), "at": time.time()})
            if await self.r.hsetnx(k["files"], sha256, entry):
                return name, True
            await self.r.hdel(k["names"], name)  # another worker reserved these bytes meanwhile
            return await self._reserved(sha256, json.loads(await self.r.hget(k["files"], sha256)), row, depth)
        raise RuntimeError("no free file name")

    async def _reserved(self, sha256: str, entry: dict[str, Any], row: Row, depth: int) -> tuple[str, bool]:
        """These bytes have a reservation: a duplicate if stored, else busy or abandoned."""
        path = str(entry["path"])
        patience = time.monotonic() + min(BUSY_WAIT_S, self.lease)
        while not await self.r.sismember(self.k["stored"], sha256):
            wait = entry["at"] + self.lease - time.time()
            if wait <= 0:
                break  # abandoned: take it over below
            # Reserved less than a lease ago: its worker is storing them now (a rename and a
            # record: milliseconds), or died so recently that the reservation is not yet
            # abandoned (then come back once it is).
            if time.monotonic() > patience:
                raise ReservationBusy(path, wait)
            await asyncio.sleep(0.05)
        else:
            return path, False
        # Its worker died between reserving and recording (the file may or may not be in
        # place): one surviving worker takes the reservation over and stores the bytes again.
        claim_key = f"{self.k['files']}:takeover:{sha256}"
        if not await self.r.set(claim_key, "1", nx=True, ex=max(1, int(self.lease))):
            raise ReservationBusy(path, 1.0)
        row.path = path
        entry.update(row=row.to_json(), depth=depth, at=time.time())
        await self.r.hset(self.k["files"], sha256, json.dumps(entry))
        return path, True

    async def commit(self, item: Item, row: Row) -> str:
        if row.status == "stored" and row.sha256:
            await self.r.sadd(self.k["stored"], row.sha256)
        line = await self._record(row)
        await self.done(item)
        return line

    async def pending_files(self) -> list[Pending]:
        stored = set(await self.r.smembers(self.k["stored"]))
        cutoff = time.time() - self.lease
        pending = []
        for sha, text in (await self.r.hgetall(self.k["files"])).items():
            entry = json.loads(text)
            if sha not in stored and entry["at"] < cutoff:
                pending.append(Pending(sha, entry["path"], Row.from_json(entry["row"]), entry["depth"]))
        return pending

    async def drop_pending(self, sha256: str) -> None:
        text = await self.r.hget(self.k["files"], sha256)
        if text is not None and not await self.r.sismember(self.k["stored"], sha256):
            await self.r.hdel(self.k["files"], sha256)
            await self.r.hdel(self.k["names"], json.loads(text)["path"])

    async def rows(self) -> list[str]:
        order = await self.r.lrange(self.k["order"], 0, -1)
        if not order:
            return []
        values = await self.r.hmget(self.k["records"], order)
        return [v for v in values if v is not None]

    async def failures(self) -> list[dict[str, Any]]:
        urls = sorted(await self.r.smembers(self.k["failed"]))
        if not urls:
            return []
        out = []
        for url, text in zip(urls, await self.r.hmget(self.k["urls"], urls), strict=True):
            item, data = _decode(url, text)
            out.append({"url": url, "kind": item.kind, "error": data.get("e"), "attempts": item.attempts})
        return out

    async def counts(self) -> Counts:
        counts = Counts()
        counts.queued = await self.r.zcard(self.k["qmedia"]) + await self.r.zcard(self.k["qpage"])
        counts.in_flight = await self.r.zcard(self.k["inflight"])
        counts.done = int(await self.r.get(self.k["done"]) or 0)
        counts.failed = await self.r.scard(self.k["failed"])
        for text in await self.r.hvals(self.k["records"]):
            row = Row.from_json(text)
            if row.status == "stored":
                counts.stored += 1
                counts.stored_bytes += row.bytes or 0
            elif row.status == "duplicate":
                counts.duplicate += 1
            else:
                counts.failed_files += 1
        return counts

    async def restart(self) -> None:
        k = self.k
        async for url, text in self.r.hscan_iter(k["urls"]):
            item, data = _decode(url, text)
            if item.kind == "page" or data.get("s") != DONE:
                await self.r.hdel(k["urls"], url)
                if data.get("s") == FAILED and item.kind == "media":
                    await self.r.hdel(k["records"], url)
                    await self.r.lrem(k["order"], 0, url)
        await self.r.delete(k["qmedia"], k["qpage"], k["inflight"], k["failed"])

    async def release(self, items: list[Item]) -> None:
        for item in items:
            await self.retry(item, 0.0, "released unstarted")

    async def forget(self, urls: Iterable[str]) -> None:
        k = self.k
        for url in urls:
            await self.r.hdel(k["urls"], url)
            await self.r.zrem(k["qpage"], url)
            await self.r.zrem(k["inflight"], url)
            await self.r.srem(k["failed"], url)

    async def close(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            await asyncio.gather(self._renewer, return_exceptions=True)
        await self.r.aclose()
