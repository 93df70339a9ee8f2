"""`fivefold crawl`: the command-line shell over `fivefold.crawl`."""

from __future__ import annotations

import click


@click.group(name="crawl")
def cli() -> None:
    """Crawl galleries and download media, politely and resumably."""
