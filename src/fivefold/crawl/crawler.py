"""The crawl engine: workers pulling from the frontier, politely, until nothing is left.

Data flow: a worker takes the next ready URL (its host has a free slot and its spacing has
passed), fetches it, and either extracts links and media from a page (queuing the new
ones) or streams a file to a temporary name, reserves a final name for its bytes, renames
it into place and records the manifest row. A failed attempt that may succeed later goes
back to the frontier with a not-before time (Retry-After or back-off); the worker moves on
at once, so a waiting retry holds no slot.
"""

from __future__ import annotations

import asyncio
import fcntl
import functools
import os
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from fivefold._common.errors import FivefoldError
from fivefold._common.log import get_logger
from fivefold.crawl.config import Options, Summary
from fivefold.crawl.extract import extract
from fivefold.crawl.fetch import (
    ROBOTS_AGENT,
    Download,
    FetchError,
    download,
    fetch_page,
    fetch_robots,
    make_session,
    remove,
)
from fivefold.crawl.manifest import Row
from fivefold.crawl.names import extension_for
from fivefold.crawl.politeness import Host, backoff
from fivefold.crawl.rules import Rules
from fivefold.crawl.state import Counts, Item, ReservationBusy, State
from fivefold.crawl.store import Store
from fivefold.crawl.urls import host_of, site_of

log = get_logger("crawl")
_NOT_MEDIA = {"", ".html", ".htm", ".php", ".asp", ".aspx", ".jsp", ".cgi"}


class CrawlAbort(FivefoldError):
    """Stops the whole crawl (bad start URL, selectors that match nothing); state stays as it is."""


class Crawler:
    def __init__(self, rules: Rules, out_dir: Path, options: Options | None = None,
                 on_progress: Callable[[Summary], None] | None = None) -> None:
        self.rules = rules
        self.options = options or Options()
        self.store = Store(Path(out_dir))
        self.stats = Summary(Path(out_dir))
        self.on_progress = on_progress
        self._sites = {site_of(u) for u in rules.start}
        self._hosts: dict[str, Host] = {}
        self._robots_locks: dict[str, asyncio.Lock] = {}
        self._nonempty: dict[str, None] = {}
        self._buffered = 0
        self._active = 0
        self._claiming = False
        self._check_queue = True
        self._due_at: float | None = None
        self._last_claim = 0.0
        self._stop = False
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._fresh_starts: set[str] = set()
        self._downloading = 0
        self._finishing: set[asyncio.Task[None]] = set()
        self._failure: BaseException | None = None
        self._stored = 0
        self._state: State | None = None
        self._session: aiohttp.ClientSession | None = None
        self._lock_handle: Any = None

    # ---- life cycle -------------------------------------------------------------------

    async def run(self) -> Summary:
        started = time.perf_counter()
        self.store.prepare()
        state = await self._open_state()
        self._state = state
        try:
            if self.options.restart:
                await state.restart()
            self.stats.resumed_in_flight = await state.recover()
            await self.store.recover(state)
            self.store.clean_temp(older_than=600.0 if self.options.frontier else 0.0)
            await self.store.rewrite_reports(state)
            for url in self.rules.start:
                if await state.add([Item(url, "page", 0)]):
                    self._fresh_starts.add(url)
            self._stored = (await state.counts()).stored
            try:
                await self._crawl()
            except CrawlAbort:
                await state.forget(self._fresh_starts)  # the bad start URLs leave no trace
                raise
            if self._start_pages_all_failed(await state.counts()):
                failures = {f["url"]: f["error"] for f in await state.failures()}
                await state.forget(self._fresh_starts)
                start = sorted(self._fresh_starts)[0]
                raise FivefoldError(f"start URL {start} failed: {failures.get(start, 'unknown error')}")
        finally:
            self.stats.elapsed_s = time.perf_counter() - started
            try:
                await self._finish(state)
            finally:
                await state.close()
                if self._lock_handle is not None:
                    self._lock_handle.close()
        return self.stats

    async def _open_state(self) -> State:
        if self.options.frontier:
            from fivefold.crawl.redis_state import RedisState

            crawl_id = self.options.crawl_id or "|".join(self.rules.start)
            return await RedisState.connect(self.options.frontier, crawl_id, self.options.lease)
        from fivefold.crawl.sqlite_state import SqliteState

        self._lock_handle = open(self.store.state_dir / "lock", "w")  # noqa: SIM115
        try:
            fcntl.flock(self._lock_handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock_handle.close()
            self._lock_handle = None
            raise FivefoldError(f"another crawl is running in {self.store.root} (use --frontier redis://... "
                                "to share a crawl between processes)") from None
        try:
            return SqliteState(self.store.state_dir / "state.sqlite")
        except Exception as exc:
            raise FivefoldError(f"cannot open crawl state in {self.store.state_dir}: {exc}") from None

    async def _finish(self, state: State) -> None:
        counts = await state.counts()
        self.stats.stored_files = counts.stored
        self.stats.duplicate_rows = counts.duplicate
        self.stats.failed_files = counts.failed_files
        self.stats.failed_urls = counts.failed
        self.stats.stored_bytes = counts.stored_bytes
        self.stats.queued = counts.queued + counts.in_flight
        await self.store.rewrite_reports(state)

    def _start_pages_all_failed(self, counts: Counts) -> bool:
        """Only start URLs new in this run, none fetched, nothing else to do: a bad start."""
        return bool(self._fresh_starts) and self.stats.pages == 0 and counts.failed > 0 and not (
            counts.queued or counts.in_flight)

    async def _crawl(self) -> None:
        self._session = make_session(self.options.concurrency, self.options.per_host, self.options.timeout)
        reporter = asyncio.create_task(self._report()) if self.on_progress else None
        workers = [asyncio.create_task(self._worker()) for _ in range(self.options.concurrency)]
        try:
            await asyncio.gather(*workers)
            while self._finishing:
                await asyncio.gather(*self._finishing)
            if self._failure is not None:
                raise self._failure
        finally:
            self._stop = True
            tasks = [*workers, *self._finishing, *([reporter] if reporter else [])]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._session.close()
            unstarted = [item for host in self._hosts.values() for item in host.waiting]
            if unstarted and self._state is not None:
                await self._state.release(unstarted)
            if self.on_progress:
                self.on_progress(self.stats)

    async def _report(self) -> None:
        assert self.on_progress is not None
        while True:
            self.on_progress(self.stats)
            await asyncio.sleep(0.25)

    # ---- scheduling -------------------------------------------------------------------

    def _notify(self, count: int = 1) -> None:
        """Wakes ``count`` idle workers: one per freed slot or new item, never the whole herd."""
        while count > 0 and self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                count -= 1

    def _notify_all(self) -> None:
        self._notify(len(self._waiters))

    async def _sleep(self, timeout: float) -> None:
        """Waits for :meth:`_notify` or ``timeout``; cheaper than ``wait_for`` on an event."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append(waiter)
        handle = loop.call_later(timeout, _wake, waiter)
        try:
            await waiter
        finally:
            handle.cancel()

    def _host(self, url: str) -> Host:
        name = host_of(url)
        host = self._hosts.get(name)
        if host is None:
            host = Host(name, self.options.per_host, self.options.delay)
            if not self.rules.robots:
                host.load_robots(None, ROBOTS_AGENT, self.options.delay)
            self._hosts[name] = host
        return host

    async def _next(self) -> tuple[Item, Host] | None:
        state = self._state
        assert state is not None
        while not self._stop:
            now = time.monotonic()
            soonest: float | None = None
            for name in self._nonempty:
                host = self._hosts[name]
                at = host.ready_at(now)
                if at is None:
                    continue
                if at <= now:
                    item = host.waiting.popleft()
                    if not host.waiting:
                        del self._nonempty[name]
                    self._buffered -= 1
                    host.start(now)
                    self._active += 1
                    return item, host
                soonest = at if soonest is None else min(soonest, at)
            wall = time.time()
            distributed = self.options.frontier is not None
            if self._due_at is not None and wall >= self._due_at:
                self._check_queue, self._due_at = True, None
            if distributed and now - self._last_claim > 0.2:
                self._check_queue = True
            can_claim = self._check_queue and not self._claiming and self._buffered < self.options.concurrency
            if can_claim and await self._refill(state, wall):
                continue
            idle = not self._buffered and not self._active and not self._claiming and self._due_at is None
            if idle and (not distributed or await state.outstanding() == 0):
                self._stop = True
                self._notify_all()
                return None
            timeout = 0.2 if distributed else 1.0
            if soonest is not None:
                timeout = min(timeout, soonest - now)
            if self._due_at is not None:
                timeout = min(timeout, self._due_at - wall)
            await self._sleep(max(0.001, timeout))
        return None

    async def _refill(self, state: State, wall: float) -> bool:
        self._claiming = True
        try:
            want = 2 * self.options.concurrency - self._buffered
            items = await state.claim(want, wall)
            self._last_claim = time.monotonic()
            if len(items) < want:
                self._check_queue = False
                due = await state.next_due()
                self._due_at = due if due is not None and due > wall else None
                if due is not None and due <= wall:
                    self._check_queue = True  # claimed by another worker meanwhile; look again
        finally:
            self._claiming = False
        self._buffer(items)
        return bool(items)

    def _buffer(self, items: list[Item]) -> None:
        for item in items:
            host = self._host(item.url)
            if item.meta.get("next"):
                host.waiting.appendleft(item)
            else:
                host.waiting.append(item)
            self._nonempty[host.name] = None
        self._buffered += len(items)
        if items:
            self._notify(len(items))

    def _queue_changed(self, not_before: float | None = None) -> None:
        if not_before is None:
            self._check_queue = True
        elif self._due_at is None or not_before < self._due_at:
            self._due_at = not_before

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            got = await self._next()
            if got is None:
                return
            item, host = got
            rest: _Rest | None = None
            try:
                rest = await self._process(item, host)
            finally:
                host.active -= 1  # the request is over: its host slot is free
                if rest is None:
                    self._active -= 1
                self._notify()
            if rest is not None:
                # Parsing, state and renames run in their own task so that this worker sends its
                # next request now: responses arrive in bursts, and a request that waited for
                # the whole burst's processing would add that much to every round trip.
                task = loop.create_task(self._finish_item(rest, item, host))
                self._finishing.add(task)
                task.add_done_callback(self._finishing.discard)

    async def _finish_item(self, rest: _Rest, item: Item, host: Host) -> None:
        try:
            try:
                await rest()
            except FetchError as err:
                await self._failed_attempt(item, host, err)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # a CrawlAbort or a bug: stop the crawl and raise it from run()
            if self._failure is None:
                self._failure = exc
            self._stop = True
            self._notify_all()
        finally:
            self._active -= 1  # counted until here, so the crawl never ends with work pending
            self._notify()

    # ---- one URL ----------------------------------------------------------------------

    async def _process(self, item: Item, host: Host) -> _Rest | None:
        """The request itself; returns what is left to do with its result, if anything."""
        state, session = self._state, self._session
        assert state is not None and session is not None
        try:
            if not host.robots_loaded:
                await self._load_robots(host, item.url)
            if self.rules.robots and not host.allowed(item.url, ROBOTS_AGENT):
                await self._give_up(item, "disallowed by robots.txt")
                return None
            item.attempts += 1
            self.stats.requests += 1
            if item.kind == "page":
                page = await fetch_page(session, item.url)
                return functools.partial(self._page, item, host, *page)
            return await self._media(item, host)
        except FetchError as err:
            await self._failed_attempt(item, host, err)
            return None

    async def _load_robots(self, host: Host, url: str) -> None:
        assert self._session is not None
        lock = self._robots_locks.setdefault(host.name, asyncio.Lock())
        async with lock:
            if host.robots_loaded:
                return
            parts = urlsplit(url)
            text = await fetch_robots(self._session, f"{parts.scheme}://{parts.netloc}")
            host.load_robots(text, ROBOTS_AGENT, self.options.delay)
            if host.delay:
                log.info("%s: %.2f s between requests (Crawl-delay or --delay)", host.name, host.delay)
            self._notify_all()

    async def _failed_attempt(self, item: Item, host: Host, err: FetchError) -> None:
        assert self._state is not None
        if err.status == 429:
            host.refused(time.monotonic())
        if err.unreachable and item.url in self._fresh_starts and self.stats.pages == 0:
            raise CrawlAbort(f"cannot reach start URL {item.url}: {err.reason}")
        if err.retryable and item.attempts <= self.options.retries:
            if err.wait is not None:
                # Never before the server's time; a little jitter so retries do not arrive together.
                wait = err.wait + random.uniform(0.0, min(1.0, 0.1 * err.wait + 0.01))
            else:
                wait = backoff(item.attempts, self.options.backoff)
            not_before = time.time() + wait
            await self._state.retry(item, not_before, err.reason)
            self.stats.retries += 1
            self._queue_changed(not_before)
            log.debug("retry %s in %.2f s: %s", item.url, wait, err.reason)
            return
        await self._give_up(item, err.reason)

    async def _give_up(self, item: Item, reason: str) -> None:
        assert self._state is not None
        self.stats.errors += 1
        row = None
        if item.kind == "media":
            row = Row(item.url, item.meta.get("page"), item.meta.get("title"), item.meta.get("fields") or {},
                      status="failed", error=reason)
        line = await self._state.fail(item, reason, row)
        if line is not None:
            self.store.append(line)
        log.info("failed %s: %s", item.url, reason)

    async def _page(self, item: Item, host: Host, body: bytes, final_url: str,
                    content_type: str | None) -> None:
        assert self._state is not None
        host.succeeded()
        self.stats.pages += 1
        new: list[Item] = []
        if content_type is None or "html" in content_type or "xml" in content_type:
            new = self._discover(item, body, final_url)
        await self._state.add(new)
        await self._state.done(item)
        if new:
            self._queue_changed()
            # The next index page is the crawl's critical path: claimed at once, not after the
            # buffer has drained (that cost a few latency rounds per index page).
            urgent = [i.url for i in new if i.meta.get("next")]
            if urgent and not self._stop:
                self._buffer(await self._state.claim_urls(urgent, time.time()))

    def _discover(self, item: Item, body: bytes, final_url: str) -> list[Item]:
        rules = self.rules
        rule = rules.page_rule(final_url, item.meta.get("as"))
        found = extract(body, final_url, rule)
        nothing = not (found.links or found.media)
        if item.url in self._fresh_starts and (rule.follow or rule.media) and nothing:
            tried = ", ".join(repr(str(s)) for s in (*rule.follow, *rule.media))
            raise CrawlAbort(f"no selector matched anything on the first page {item.url} (tried {tried})")
        new: list[Item] = []
        if item.depth < rules.max_depth:
            several = len(rules.pages) > 1
            pagination_type = rule.name if several else None
            # The next index page is a sibling, not a child: long paginations do not hit max_depth.
            for urls, as_type, depth in ((found.links, rule.follow_as, item.depth + 1),
                                         (found.paginate, pagination_type, item.depth)):
                for url in urls:
                    if rules.same_site and site_of(url) not in self._sites:
                        continue
                    if not rule.wants_link(url):
                        continue
                    meta: dict[str, Any] = {"as": as_type} if as_type else {}
                    if depth == item.depth:
                        meta["next"] = 1  # pagination goes first: it is the crawl's critical path
                    new.append(Item(url, "page", depth, meta))
        media_meta = {"page": item.url, "title": found.title, "fields": found.fields}
        for url in found.media:
            if rules.generic and PurePosixPath(urlsplit(url).path).suffix.lower() in _NOT_MEDIA:
                continue
            new.append(Item(url, "media", item.depth + 1, media_meta))
        return new

    async def _media(self, item: Item, host: Host) -> _Rest | None:
        state, session, store, rules = self._state, self._session, self.store, self.rules
        assert state is not None and session is not None
        if rules.max_files is not None and self._stored + self._downloading >= rules.max_files:
            item.attempts -= 1
            self.stats.requests -= 1
            if self._stored >= rules.max_files:
                await state.retry(item, 0.0, "not started: --max-files reached")
                self._stop = True
                self.stats.stopped_early = True
                self._notify_all()
                return None
            # A download in flight may still fail and be retried: stopping now would leave the
            # crawl short of --max-files, so look again once the downloads have settled.
            not_before = time.time() + 0.05
            await state.retry(item, not_before, "waiting: downloads in flight may reach --max-files")
            self._queue_changed(not_before)
            return None
        self._downloading += 1
        try:
            result = await download(session, item.url, store.temp_path(), max_bytes=rules.max_bytes,
                                    type_allowed=rules.type_allowed, fsync=self.options.fsync)
        except BaseException:
            self._downloading -= 1
            raise
        return functools.partial(self._store, item, host, result)

    async def _store(self, item: Item, host: Host, result: Download) -> None:
        try:
            await self._keep(item, host, result)
        finally:
            self._downloading -= 1

    async def _keep(self, item: Item, host: Host, result: Download) -> None:
        state, store, rules = self._state, self.store, self.rules
        assert state is not None
        host.succeeded()
        self.stats.downloads += 1
        self.stats.downloaded_bytes += result.size
        if result.size < rules.min_bytes:
            remove(result.temp)
            raise FetchError(f"smaller than --min-bytes ({result.size} < {rules.min_bytes})", retryable=False)
        title = item.meta.get("title")
        row = Row(item.url, item.meta.get("page"), title, item.meta.get("fields") or {}, None,
                  result.sha256, result.size, result.content_type, "stored")
        ext = extension_for(item.url, result.content_type)
        names = store.candidate_names(rules.name, item, result.sha256, ext, title, host.name)
        try:
            path, is_new = await state.reserve(result.sha256, names, row, item.depth)
        except ReservationBusy as busy:
            remove(result.temp)
            item.attempts -= 1  # not this request's failure: come back when the other copy is settled
            raise FetchError("the same bytes are being stored by another worker", retryable=True,
                             wait=busy.wait) from None
        row.path = path
        if is_new:
            try:
                store.place(result.temp, path)
            except (OSError, ValueError) as exc:
                remove(result.temp)
                await state.drop_pending(result.sha256)
                raise FetchError(f"cannot store as {path!r}: {exc}", retryable=False) from None
            self._stored += 1
        else:
            os.unlink(result.temp)
            row.status = "duplicate"
        store.append(await state.commit(item, row))


_Rest = Callable[[], Awaitable[None]]


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


async def crawl(rules: Rules, out_dir: Path, options: Options | None = None,
                on_progress: Callable[[Summary], None] | None = None) -> Summary:
    """Runs (or resumes) a crawl into ``out_dir`` and returns its summary."""
    return await Crawler(rules, out_dir, options, on_progress).run()


def run_crawl(rules: Rules, out_dir: Path, options: Options | None = None,
              on_progress: Callable[[Summary], None] | None = None) -> Summary:
    """:func:`crawl` on a new event loop, uvloop's when installed (``options.loop``)."""
    from fivefold.crawl.loop import run

    options = options or Options()
    return run(crawl(rules, out_dir, options, on_progress), options.loop)
