"""``fivefold demo`` for crawl: serve the embedded gallery on an ephemeral port, crawl it, summarise."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fivefold.crawl.config import Options
from fivefold.crawl.crawler import crawl
from fivefold.crawl.demo_site import DemoSite, SiteConfig, start_site
from fivefold.crawl.rules import rules_from_flags


async def _run(out_dir: Path) -> dict[str, str]:
    # A few faults and hostile titles on purpose: the summary shows them retried and tamed.
    site = DemoSite(SiteConfig(index_pages=4, per_page=10, faults=0.05, retry_after=0.2, duplicate_every=9,
                               hostile_every=5, traps=True, huge_bytes=2 << 20), record=False)
    runner, base = await start_site(site)
    try:
        rules = rules_from_flags([base + "/"], follow=["a.detail"], media=["img.photo"], title="h1",
                                 fields={"caption": "p.caption"}, paginate=None, allow=[], deny=[],
                                 max_bytes=1 << 20)
        summary = await crawl(rules, out_dir, Options(concurrency=8, per_host=8, backoff=0.05))
    finally:
        await runner.cleanup()
    lines = summary.lines()
    return {
        "site": f"{base}/ ({site.config.items} items; 5% faults, hostile titles, a redirect loop, "
                "a huge file)",
        "stored": lines[0],
        "run": lines[1],
        "manifest": str(out_dir / "manifest.jsonl"),
        "failures": str(out_dir / "failures.jsonl"),
    }


def demo(out_dir: Path) -> dict[str, str]:
    """Crawls the embedded demo site into ``out_dir`` and returns what it produced."""
    return asyncio.run(_run(Path(out_dir)))
