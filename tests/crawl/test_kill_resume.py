"""kill -9 at random points, then the same crawl again: nothing partial, nothing twice."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from fivefold.crawl.config import Options
from fivefold.crawl.manifest import read_manifest

from .conftest import check_complete, cli, cli_env, run_crawl, stored_files

SITE = {"index_pages": 3, "per_page": 8, "latency_ms": 15.0, "duplicate_every": 6, "hostile_every": 3}
FLAGS = ["--follow", "a.detail", "--media", "img.photo", "--title", "h1", "--field", "caption=p.caption",
         "--concurrency", "4", "--per-host", "4"]


def _in_flight(out: Path) -> int:
    db = sqlite3.connect(out / ".fivefold-crawl" / "state.sqlite")
    try:
        return int(db.execute("SELECT count(*) FROM urls WHERE state = 1").fetchone()[0])
    finally:
        db.close()


@pytest.mark.parametrize("trial", range(10))
def test_kill_9_then_resume(serve, tmp_path: Path, trial: int) -> None:
    rng = random.Random(trial)
    served = serve(**SITE)
    total = 1 + 3 + 24 + 24  # robots.txt, index pages, detail pages, images
    kill_after = rng.randrange(2, total - 2)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "fivefold", "crawl", served.start, *FLAGS, "--out", str(out)]
    process = subprocess.Popen(command, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while len(served.site.hits) < kill_after and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.001)
    time.sleep(rng.uniform(0, 0.01))
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    assert process.returncode == -signal.SIGKILL, process.stderr.read() if process.stderr else ''

    # Right after the kill: any file under a final name is a complete copy of a served image.
    expected = set(served.site.expected_files().values())
    assert set(stored_files(out).values()) <= expected
    in_flight = _in_flight(out) if (out / ".fivefold-crawl" / "state.sqlite").exists() else 0

    if trial == 0:
        result = cli(served.start, *FLAGS, "--out", str(out), "--json")
        assert result.returncode == 0, result.stderr
    else:
        run_crawl(served.start, out, options=Options(concurrency=4, per_host=4, backoff=0.05))

    check_complete(out, served.site)
    rows = read_manifest(out)
    assert len(rows) == len({r.url for r in rows}) == 24
    image_hits = Counter(h.path for h in served.site.hits if h.path.startswith("/img/"))
    redownloads = sum(n - 1 for n in image_hits.values())
    print(f"trial {trial}: killed after {kill_after} requests, {in_flight} in flight, {redownloads} again")
    assert redownloads <= in_flight, (redownloads, in_flight, kill_after)
    assert not list((out / ".fivefold-crawl" / "tmp").iterdir())
