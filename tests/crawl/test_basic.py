"""End to end on the demo site: every file once, right bytes, safe names, robots, dedup, resume."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from fivefold.crawl.config import Options
from fivefold.crawl.manifest import read_manifest
from fivefold.crawl.names import NAME_MAX_BYTES

from .conftest import check_complete, run_crawl, stored_files


def test_crawl_gallery_stores_every_image_once(serve, tmp_path: Path) -> None:
    served = serve(index_pages=3, per_page=8, duplicate_every=5, hostile_every=2, traps=True,
                   huge_bytes=3 << 20)
    out = tmp_path / "out"
    summary = run_crawl(served.start, out, max_bytes=1 << 20)
    check_complete(out, served.site)
    rows = read_manifest(out)
    assert summary.stored_files == len(set(served.site.expected_files().values()))
    assert summary.duplicate_rows == sum(r.status == "duplicate" for r in rows) > 0
    # The manifest contract: relative POSIX paths, every documented key present.
    for row in rows:
        data = json.loads(row.to_json())
        assert set(data) >= {"url", "page", "title", "fields", "path", "sha256", "bytes", "content_type",
                             "status"}
        if row.status != "failed":
            assert row.path is not None and not row.path.startswith("/") and "\\" not in row.path
            assert (out / row.path).stat().st_size == row.bytes
            assert row.content_type == "image/jpeg"
            assert row.fields["caption"].startswith("Caption for")
            assert row.page is not None and "/item/" in row.page
    # Hostile titles: every name inside the directory and within the byte limit.
    real = out.resolve()
    for name in stored_files(out):
        assert len(name.encode()) <= NAME_MAX_BYTES
        assert (out / name).resolve().parent == real
    assert any(name.startswith("_CON") for name in stored_files(out))
    # robots.txt Disallow obeyed, traps failed for good with reasons.
    assert served.site.count("/private/admin") == 0
    failures = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    reasons = {f["url"].rsplit("/", 2)[-2] + "/" + f["url"].rsplit("/", 1)[-1]: f["error"] for f in failures}
    assert any("redirect" in error for error in reasons.values())
    assert any("max-bytes" in error for error in reasons.values())
    assert any("robots" in error for error in reasons.values())
    assert not list((out / ".fivefold-crawl" / "tmp").iterdir())


def test_rerun_resumes_without_refetching(serve, tmp_path: Path) -> None:
    served = serve(index_pages=2, per_page=5)
    out = tmp_path / "out"
    run_crawl(served.start, out)
    before = len(served.site.hits)
    manifest = (out / "manifest.jsonl").read_text()
    again = run_crawl(served.start, out)
    assert again.requests == 0
    assert [h.path for h in served.site.hits[before:]] in ([], ["/robots.txt"])
    assert (out / "manifest.jsonl").read_text() == manifest
    check_complete(out, served.site)


def test_max_files_stops_and_rerun_continues(serve, tmp_path: Path) -> None:
    served = serve(index_pages=2, per_page=6)
    out = tmp_path / "out"
    first = run_crawl(served.start, out, max_files=4)
    assert first.stored_files == 4 and first.stopped_early
    assert len(stored_files(out)) == 4
    run_crawl(served.start, out)
    check_complete(out, served.site)


def test_crawl_delay_from_robots_spaces_requests(serve, tmp_path: Path) -> None:
    served = serve(index_pages=1, per_page=3, crawl_delay=0.15)
    out = tmp_path / "out"
    run_crawl(served.start, out, options=Options(concurrency=8, per_host=8))
    times = [h.time for h in served.site.hits if h.path != "/robots.txt"]
    assert len(times) == 7
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # Starts are spaced by the client; arrival times at the server jitter a little under load.
    assert sum(gaps) / len(gaps) >= 0.145 and min(gaps) >= 0.09, gaps


def test_name_template_and_types(serve, tmp_path: Path) -> None:
    served = serve(index_pages=1, per_page=3)
    out = tmp_path / "out"
    run_crawl(served.start, out, name="{index}-{sha256:.12}{ext}")
    names = sorted(stored_files(out))
    assert len(names) == 3 and all(n.endswith(".jpg") and len(n.split("-")[1]) == 16 for n in names)
    other = tmp_path / "other"
    summary = run_crawl(served.start, other, types=("text/*",))
    assert summary.stored_files == 0 and summary.failed_files == 3
    assert all("not allowed" in r.error for r in read_manifest(other) if r.error)


def test_restart_refetches_pages_but_keeps_files(serve, tmp_path: Path) -> None:
    served = serve(index_pages=1, per_page=3)
    out = tmp_path / "out"
    run_crawl(served.start, out)
    again = run_crawl(served.start, out, options=Options(concurrency=4, per_host=4, restart=True))
    assert again.pages == 4 and again.downloads == 0
    check_complete(out, served.site)


def test_rules_file_with_page_types(serve, tmp_path: Path) -> None:
    import asyncio
    import dataclasses

    from fivefold.crawl.crawler import crawl
    from fivefold.crawl.rules import load_rules

    example = Path(__file__).resolve().parents[2] / "examples" / "crawl" / "demo-site.toml"
    served = serve(index_pages=2, per_page=4)
    rules = dataclasses.replace(load_rules(example), start=(served.start,))
    assert [p.name for p in rules.pages] == ["index", "detail"]
    out = tmp_path / "out"
    summary = asyncio.run(crawl(rules, out, Options(concurrency=4, per_host=4)))
    check_complete(out, served.site)
    assert summary.failed_urls == 0  # /private/ denied by the rules, never even tried
    assert {r.fields["caption"] for r in read_manifest(out)} == {f"Caption for {i}" for i in range(8)}
