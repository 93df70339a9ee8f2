"""Run options (how to crawl, as opposed to the rules' what) and the closing summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(slots=True)
class Options:
    """How a crawl runs; none of these change what it produces."""

    concurrency: int = 16
    per_host: int = 8
    delay: float = 0.0
    retries: int = 4
    backoff: float = 0.5
    timeout: float = 30.0
    frontier: str | None = None  # redis://... shares the crawl; None: SQLite in the output directory
    restart: bool = False
    fsync: bool = False
    progress: bool | None = None  # None: when stderr is a terminal
    crawl_id: str | None = None  # names the crawl in a shared frontier; default from the start URLs
    loop: str = "auto"  # event loop for run_crawl: auto (uvloop if installed), uvloop, asyncio
    lease: float = 30.0  # shared frontier: seconds before a dead worker's URLs go back to the queue


@dataclass(slots=True)
class Summary:
    """What a run did (this run's counters) and what the output directory now holds (totals)."""

    out_dir: Path
    elapsed_s: float = 0.0
    requests: int = 0
    pages: int = 0
    downloads: int = 0
    downloaded_bytes: int = 0
    retries: int = 0
    errors: int = 0
    resumed_in_flight: int = 0
    stored_files: int = 0
    duplicate_rows: int = 0
    failed_files: int = 0
    failed_urls: int = 0
    stored_bytes: int = 0
    queued: int = 0
    stopped_early: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in self.__dataclass_fields__ if name != "extra"}
        data["out_dir"] = str(self.out_dir)
        data["requests_per_s"] = round(self.requests / self.elapsed_s, 1) if self.elapsed_s else 0.0
        data["elapsed_s"] = round(self.elapsed_s, 3)
        return data | self.extra

    def lines(self) -> list[str]:
        rate = self.requests / self.elapsed_s if self.elapsed_s else 0.0
        return [
            f"{self.stored_files} files stored ({_size(self.stored_bytes)}), "
            f"{self.duplicate_rows} duplicates, "
            f"{self.failed_files} files failed, {self.failed_urls} URLs failed in all",
            f"this run: {self.requests} requests ({self.pages} pages, {self.downloads} downloads, "
            f"{_size(self.downloaded_bytes)}) in {self.elapsed_s:.1f} s, {rate:.0f} req/s, "
            f"{self.retries} retries, {self.errors} errors"
            + (f", {self.queued} URLs left queued" if self.queued else ""),
            f"manifest: {self.out_dir / 'manifest.jsonl'}",
        ]


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"
