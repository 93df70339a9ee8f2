from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fivefold.crawl.config import Options, Summary
from fivefold.crawl.crawler import run_crawl as library_run_crawl
from fivefold.crawl.demo_site import DemoSite, SiteConfig, serve_in_thread
from fivefold.crawl.manifest import read_manifest
from fivefold.crawl.rules import rules_from_flags

SRC = Path(__file__).resolve().parents[2] / "src"


class Served:
    def __init__(self, site: DemoSite, base: str) -> None:
        self.site = site
        self.base = base
        self.start = base + "/"


@pytest.fixture
def serve() -> Iterator[Any]:
    """serve(**SiteConfig fields) -> Served; every server is stopped at teardown."""
    stack: list[Any] = []

    def start(**config: Any) -> Served:
        site = DemoSite(SiteConfig(**config))
        context = serve_in_thread(site)
        base = context.__enter__()
        stack.append(context)
        return Served(site, base)

    yield start
    for context in reversed(stack):
        context.__exit__(None, None, None)


def gallery_rules(start: str, **overrides: Any) -> Any:
    return rules_from_flags([start], follow=["a.detail"], media=["img.photo"], title="h1",
                            fields={"caption": "p.caption"}, paginate=None, allow=[], deny=[], **overrides)


def run_crawl(start: str, out: Path, *, options: Options | None = None, **rule_overrides: Any) -> Summary:
    options = options or Options(concurrency=8, per_host=8, backoff=0.05)
    return library_run_crawl(gallery_rules(start, **rule_overrides), out, options)  # uvloop when installed


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def stored_files(out: Path) -> dict[str, str]:
    """Every visible file in the output directory except the reports: name -> sha256."""
    reports = ("manifest.jsonl", "failures.jsonl")
    return {p.name: sha256_file(p) for p in out.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.name not in reports}


def check_complete(out: Path, site: DemoSite) -> None:
    """Every image the site serves is stored exactly once, with the server's bytes."""
    expected = site.expected_files()
    files = stored_files(out)
    assert sorted(files.values()) == sorted(set(expected.values()))
    rows = read_manifest(out)
    urls = [r.url for r in rows]
    assert len(urls) == len(set(urls)), "duplicate manifest rows"
    by_path = {r.url.split("/", 3)[3]: r for r in rows}
    for path, sha in expected.items():
        row = by_path[path.lstrip("/")]
        assert row.status in ("stored", "duplicate"), row
        assert row.sha256 == sha
        assert row.path is not None and files[row.path] == sha


def cli_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(SRC)}


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fivefold", "crawl", *args], capture_output=True, text=True,
                          env=cli_env(), timeout=timeout)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server (Debian package redis-server) is not installed")
    port = _free_port()
    workdir = tmp_path / "redis"
    workdir.mkdir()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)
