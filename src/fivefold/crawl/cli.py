"""`fivefold crawl`: the command-line shell over `fivefold.crawl`.

``fivefold crawl URL... [options]`` runs a crawl (the ``run`` sub-command, implied when the
first argument is not a sub-command); ``fivefold crawl demo-site`` serves the embedded site.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import click

from fivefold._common.errors import UsageError


class _CrawlGroup(click.Group):
    """A group where ``fivefold crawl URL ...`` means ``fivefold crawl run URL ...``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group(name="crawl", cls=_CrawlGroup)
def cli() -> None:
    """Crawl galleries and download media, politely and resumably.

    \b
    fivefold crawl URL... [options]      crawl (same as 'fivefold crawl run')
    fivefold crawl demo-site             serve the embedded gallery site
    """


def _fields(values: tuple[str, ...]) -> dict[str, str]:
    fields = {}
    for value in values:
        name, eq, css = value.partition("=")
        if not eq or not name.strip() or not css.strip():
            raise UsageError(f"--field: expected NAME=CSS, got {value!r}")
        fields[name.strip()] = css.strip()
    return fields


@cli.command("run")
@click.argument("urls", nargs=-1)
@click.option("--follow", multiple=True, metavar="CSS", help="Links to follow (repeatable; CSS[@attr]).")
@click.option("--media", multiple=True, metavar="CSS",
              help="Files to download (repeatable; default attr src).")
@click.option("--title", metavar="CSS", help="The title of a page's files (names and manifest).")
@click.option("--field", "fields", multiple=True, metavar="NAME=CSS", help="Another field for the manifest.")
@click.option("--paginate", metavar="CSS", default=None,
              help="Pagination links (default: a[rel~=next], link[rel~=next]; '' turns it off).")
@click.option("--allow", multiple=True, metavar="REGEX", help="Follow only links matching (repeatable).")
@click.option("--deny", multiple=True, metavar="REGEX", help="Never follow links matching (repeatable).")
@click.option("--rules", "rules_file", type=click.Path(path_type=Path), help="TOML rules file.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None, show_default="crawl-out",
              help="Output directory (rerunning with the same one resumes).")
@click.option("--concurrency", type=click.IntRange(1, 1024), default=None, show_default="16")
@click.option("--per-host", type=click.IntRange(1, 1024), default=None, show_default="8")
@click.option("--delay", type=click.FloatRange(0), default=None, show_default="0",
              help="Seconds between requests to one host (robots.txt Crawl-delay raises it).")
@click.option("--max-depth", type=click.IntRange(0), default=None)
@click.option("--max-files", type=click.IntRange(1), default=None, help="Stop after storing this many files.")
@click.option("--max-bytes", metavar="SIZE", default=None, help="Largest file to keep (default 1GB).")
@click.option("--min-bytes", metavar="SIZE", default=None, help="Smallest file to keep.")
@click.option("--types", metavar="LIST", default=None, help="Allowed media types (default image/*).")
@click.option("--name", "name_template", metavar="TEMPLATE", default=None,
              help="File names: {title} {stem} {sha256:.12} {ext} {index} {host} {page}.")
@click.option("--generic", is_flag=True, default=None,
              help="Take every file-like link and image on the site.")
@click.option("--all-sites", is_flag=True, help="Follow links to other sites too.")
@click.option("--no-robots", is_flag=True, help="Ignore robots.txt (and its Crawl-delay).")
@click.option("--frontier", metavar="URL", default=None, help="redis://host:port/db to share the crawl.")
@click.option("--crawl-id", default=None, help="Names the crawl in a shared frontier (default: start URLs).")
@click.option("--resume/--restart", default=True, show_default=True,
              help="Resume the crawl in --out, or forget its frontier (stored files are kept).")
@click.option("--retries", type=click.IntRange(0), default=None, show_default="4")
@click.option("--timeout", type=click.FloatRange(0.1), default=None, show_default="30",
              help="Seconds without progress before a request is retried.")
@click.option("--fsync", is_flag=True, default=None,
              help="fsync each file before it gets its name (power-cut safety).")
@click.option("--loop", type=click.Choice(["auto", "uvloop", "asyncio"]), default=None, show_default="auto",
              help="Event loop: uvloop when installed (auto), or asyncio's.")
@click.option("--lease", type=click.FloatRange(1), default=None, show_default="30",
              help="--frontier: seconds before the URLs of a worker that died go back to the queue.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def run_command(urls: tuple[str, ...], follow: tuple[str, ...], media: tuple[str, ...], title: str | None,
                fields: tuple[str, ...], paginate: str | None, allow: tuple[str, ...], deny: tuple[str, ...],
                rules_file: Path | None, out_dir: Path | None, concurrency: int | None,
                per_host: int | None, delay: float | None,
                max_depth: int | None, max_files: int | None, max_bytes: str | None, min_bytes: str | None,
                types: str | None, name_template: str | None, generic: bool | None, all_sites: bool,
                no_robots: bool, frontier: str | None, crawl_id: str | None, resume: bool,
                retries: int | None, timeout: float | None, fsync: bool | None, loop: str | None,
                lease: float | None, as_json: bool) -> None:
    """Crawl URL... and download the media the rules select into --out.

    Defaults for --out, --concurrency, --per-host, --delay, --retries, --timeout, --frontier,
    --crawl-id, --fsync, --loop and --lease may be set in fivefold.toml ([crawl]) or as
    FIVEFOLD_CRAWL_<NAME>; flags win.
    """
    from fivefold.crawl.rules import load_rules, parse_size, rules_from_flags
    from fivefold.crawl.settings import crawl_settings, options_from

    settings = crawl_settings({
        "out": str(out_dir) if out_dir is not None else None, "concurrency": concurrency,
        "per_host": per_host, "delay": delay, "retries": retries, "timeout": timeout, "frontier": frontier,
        "crawl_id": crawl_id, "fsync": fsync, "loop": loop, "lease": lease,
    })
    frontier = settings.get("frontier")
    if frontier is not None and not frontier.startswith(("redis://", "rediss://", "unix://")):
        raise UsageError(f"--frontier: expected redis://host:port/db, got {frontier!r}")
    base = load_rules(rules_file) if rules_file is not None else None
    rules = rules_from_flags(
        list(urls), follow=list(follow), media=list(media), title=title, fields=_fields(fields),
        paginate=paginate, allow=list(allow), deny=list(deny), base=base,
        max_depth=max_depth, max_files=max_files,
        max_bytes=parse_size(max_bytes, "--max-bytes") if max_bytes else None,
        min_bytes=parse_size(min_bytes, "--min-bytes") if min_bytes else None,
        types=tuple(t.strip() for t in types.split(",") if t.strip()) if types else None,
        name=name_template, generic=generic,
        same_site=False if all_sites else None, robots=False if no_robots else None,
    )
    options = options_from(settings, restart=not resume)
    out_dir = Path(settings.get("out", "crawl-out"))
    # aiohttp and friends load only once the input is known to be good: usage errors stay fast.
    from fivefold._common.jsonout import emit
    from fivefold._common.progress import progress_bar
    from fivefold.crawl.crawler import run_crawl

    with progress_bar(enabled=False if as_json else None, transient=True) as bar:
        on_progress = _progress_callback(bar) if bar is not None else None
        summary = run_crawl(rules, out_dir, options, on_progress)
    if as_json:
        emit(summary.to_dict())
    else:
        for line in summary.lines():
            click.echo(line)


def _progress_callback(bar: Any) -> Any:
    task = bar.add_task("crawl", total=None, rate="")
    started = time.perf_counter()

    def update(stats: Any) -> None:
        elapsed = max(1e-6, time.perf_counter() - started)
        rate = (f"{stats.pages / elapsed:.0f} pages/s  {stats.downloads} files  "
                f"{stats.downloaded_bytes / 1e6:.1f} MB  {stats.retries} retries  {stats.errors} errors")
        bar.update(task, completed=stats.downloads, rate=rate)

    return update


@cli.command("demo-site")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True,
              help="0: any free port.")
@click.option("--pages", type=click.IntRange(1), default=5, show_default=True, help="Index pages.")
@click.option("--per-page", type=click.IntRange(1), default=20, show_default=True,
              help="Items per index page.")
@click.option("--latency-ms", type=click.FloatRange(0), default=0.0, show_default=True)
@click.option("--faults", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Fraction of requests that fail (429/503, cut-short, reset, slow).")
@click.option("--retry-after", type=click.FloatRange(0), default=1.0, show_default=True)
@click.option("--crawl-delay", type=click.FloatRange(0), default=0.0, show_default=True)
@click.option("--traps", is_flag=True, help="Add a redirect loop and an over-large file.")
@click.option("--image-px", type=click.IntRange(16, 4096), default=96, show_default=True)
@click.option("--huge-bytes", metavar="SIZE", default="8MB", show_default=True,
              help="Size of the over-large file (--traps).")
@click.option("--duration", type=click.FloatRange(0), default=0.0,
              help="Stop after this many seconds (0: never).")
def demo_site_command(host: str, port: int, pages: int, per_page: int, latency_ms: float, faults: float,
                      retry_after: float, crawl_delay: float, traps: bool, image_px: int,
                      huge_bytes: str, duration: float) -> None:
    """Serve the embedded gallery site until interrupted."""
    from fivefold.crawl.demo_site import DemoSite, SiteConfig, start_site
    from fivefold.crawl.rules import parse_size

    config = SiteConfig(index_pages=pages, per_page=per_page, latency_ms=latency_ms, faults=faults,
                        retry_after=retry_after, crawl_delay=crawl_delay, traps=traps, image_px=image_px,
                        huge_bytes=parse_size(huge_bytes, "--huge-bytes"))
    site = DemoSite(config, record=False)

    async def serve() -> None:
        try:
            runner, base = await start_site(site, host, port)
        except OSError as exc:
            raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        click.echo(f"serving {pages * per_page} items on {base}/ (Ctrl-C stops)", err=True)
        click.echo(base + "/", nl=True)
        try:
            if duration:
                await asyncio.sleep(duration)
            else:
                await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    asyncio.run(serve())
