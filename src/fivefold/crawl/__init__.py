"""fivefold.crawl: a polite, resumable asyncio gallery crawler and media downloader.

The public API is imported lazily so that ``import fivefold.crawl`` stays cheap (no aiohttp
until a crawl is run)::

    from fivefold.crawl import crawl, run_crawl, Options, rules_from_flags, load_rules, read_manifest
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fivefold.crawl.config import Options, Summary
    from fivefold.crawl.crawler import Crawler, crawl, run_crawl
    from fivefold.crawl.manifest import Row, read_manifest
    from fivefold.crawl.rules import PageRule, Rules, load_rules, rules_from_flags

__all__ = ["Crawler", "Options", "PageRule", "Row", "Rules", "Summary", "crawl", "load_rules",
           "read_manifest", "rules_from_flags", "run_crawl"]

_WHERE = {
    "Options": "config", "Summary": "config", "Crawler": "crawler", "crawl": "crawler",
    "run_crawl": "crawler",
    "Row": "manifest", "read_manifest": "manifest", "PageRule": "rules", "Rules": "rules",
    "load_rules": "rules", "rules_from_flags": "rules",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'fivefold.crawl' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"fivefold.crawl.{module}"), name)
