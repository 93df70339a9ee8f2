"""Two worker processes share one crawl through a real redis-server: every file exactly once."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from fivefold.crawl.manifest import Row, read_manifest

from .conftest import check_complete, cli_env


def test_two_workers_share_one_crawl(serve, redis_url: str, tmp_path: Path) -> None:
    # Slow enough (one worker alone: ~2 s) that both workers are surely running at once.
    served = serve(index_pages=3, per_page=10, latency_ms=60.0, duplicate_every=7)
    out = tmp_path / "shared-out"
    command = [sys.executable, "-m", "fivefold", "crawl", served.start, "--follow", "a.detail",
               "--media", "img.photo", "--title", "h1", "--out", str(out), "--frontier", redis_url,
               "--concurrency", "2", "--per-host", "2", "--json"]
    workers = [subprocess.Popen(command, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for _ in range(2)]
    results = [w.communicate(timeout=120) for w in workers]
    for worker, (_, err) in zip(workers, results, strict=True):
        assert worker.returncode == 0, err
    summaries = [json.loads(stdout) for stdout, _ in results]

    check_complete(out, served.site)
    rows = read_manifest(out)
    assert len(rows) == 30 and len({r.url for r in rows}) == 30
    # Each URL was fetched once in all, and both workers did part of the work.
    hits = Counter(h.path for h in served.site.hits if h.path != "/robots.txt")
    assert set(hits.values()) == {1}, [p for p, n in hits.items() if n > 1]
    assert sum(s["downloads"] for s in summaries) == 30
    assert all(s["requests"] > 0 for s in summaries), summaries


def test_redis_frontier_resumes_and_dedups(serve, redis_url: str, tmp_path: Path) -> None:
    import asyncio

    from fivefold.crawl.config import Options
    from fivefold.crawl.crawler import crawl

    from .conftest import gallery_rules

    served = serve(index_pages=2, per_page=4)
    out = tmp_path / "out"
    options = Options(concurrency=4, per_host=4, frontier=redis_url)
    first = asyncio.run(crawl(gallery_rules(served.start, max_files=3), out, options))
    assert first.stored_files == 3
    second = asyncio.run(crawl(gallery_rules(served.start), out, options))
    assert second.requests < 8 + 2 + 8 - 3  # nothing fetched twice
    check_complete(out, served.site)


def test_worker_killed_mid_crawl_its_urls_are_reclaimed(serve, redis_url: str, tmp_path: Path) -> None:
    import hashlib
    import signal

    import redis

    served = serve(index_pages=3, per_page=10, latency_ms=60.0, duplicate_every=7)
    out = tmp_path / "shared-out"
    command = [sys.executable, "-m", "fivefold", "crawl", served.start, "--follow", "a.detail",
               "--media", "img.photo", "--title", "h1", "--out", str(out), "--frontier", redis_url,
               "--crawl-id", "lease-test", "--lease", "1.5", "--concurrency", "3", "--per-host", "3",
               "--json"]
    victim = subprocess.Popen(command, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    survivor = subprocess.Popen(command, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    inflight_key = "fivefold:crawl:" + hashlib.sha256(b"lease-test").hexdigest()[:16] + ":inflight"
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        # Kill the victim while it holds URLs: both workers have claimed, more than the
        # survivor alone can hold (3) are in flight.
        deadline = time.monotonic() + 30
        while client.zcard(inflight_key) <= 3 and victim.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        held_at_kill = client.zcard(inflight_key)
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        stdout, stderr = survivor.communicate(timeout=90)  # the old 300 s lease would hang here
    finally:
        for process in (victim, survivor):
            if process.poll() is None:
                process.kill()
                process.wait(10)
    assert held_at_kill > 3, "the victim was killed before it held anything"
    assert survivor.returncode == 0, stderr
    assert client.zcard(inflight_key) == 0
    client.close()
    check_complete(out, served.site)  # every file exactly once, with the server's bytes
    rows = read_manifest(out)
    assert len(rows) == 30 and len({r.url for r in rows}) == 30
    assert json.loads(stdout)["stored_files"] == len(set(served.site.expected_files().values()))


def test_reservation_of_a_dead_worker_is_taken_over_once(redis_url: str) -> None:
    import asyncio

    from fivefold.crawl.redis_state import RedisState
    from fivefold.crawl.state import Item

    def row(url: str) -> Row:
        return Row(url, None, None, {}, None, "ab" * 32, 10, "image/jpeg", "stored")

    async def scenario() -> None:
        dead = await RedisState.connect(redis_url, "takeover", lease=1.0)
        live = await RedisState.connect(redis_url, "takeover", lease=1.0)
        other = await RedisState.connect(redis_url, "takeover", lease=1.0)
        try:
            first = await dead.reserve("ab" * 32, iter(["a.jpg", "a-2.jpg"]), row("http://x/1"), 1)
            assert first == ("a.jpg", True)
            # "dead" never records it. A worker with the same bytes waits (a live owner stores
            # within milliseconds), then takes the abandoned reservation over, same name.
            started = time.monotonic()
            path, is_new = await live.reserve("ab" * 32, iter(["b.jpg"]), row("http://x/2"), 1)
            assert (path, is_new) == ("a.jpg", True) and time.monotonic() - started >= 0.9
            # A third worker meanwhile: the take-over is live now, so it waits for it to be stored.
            waiting = asyncio.ensure_future(other.reserve("ab" * 32, iter(["c.jpg"]), row("http://x/3"), 1))
            await asyncio.sleep(0.2)
            assert not waiting.done()
            await live.commit(Item("http://x/2", "media"), row("http://x/2"))
            assert await waiting == ("a.jpg", False)  # a duplicate of the stored file
        finally:
            for state in (dead, live, other):
                await state.close()

    asyncio.run(scenario())
