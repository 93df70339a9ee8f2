"""HTTP: the aiohttp session, response classification, and streamed downloads.

Every failure becomes a :class:`FetchError` that says whether trying again can help and, for
429/503, how long the server asked us to wait. Downloads are streamed chunk by chunk into an
open temporary file while being hashed, so memory per download is one chunk whatever the
file's size.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from dataclasses import dataclass
from typing import Any

import aiohttp

from fivefold import __version__
from fivefold.crawl.politeness import retry_after

USER_AGENT = f"fivefold-crawl/{__version__} (+https://github.com/fivefold/fivefold; polite media crawler)"
ROBOTS_AGENT = "fivefold-crawl"
RETRY_STATUSES = {408, 425, 429, 500, 502, 503, 504}
CHUNK = 1 << 16
PAGE_MAX_BYTES = 16 << 20


class FetchError(Exception):
    """Why a request failed; ``retryable`` says whether another attempt can help."""

    def __init__(self, reason: str, *, retryable: bool, wait: float | None = None,
                 status: int | None = None, unreachable: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.wait = wait
        self.status = status
        self.unreachable = unreachable


def make_session(concurrency: int, per_host: int, timeout: float) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=per_host, ttl_dns_cache=300,
                                     enable_cleanup_closed=True)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=None, connect=timeout, sock_connect=timeout, sock_read=timeout),
        headers={"User-Agent": USER_AGENT, "Accept-Encoding": "gzip, deflate"},
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=True,
    )


def _status_error(response: aiohttp.ClientResponse) -> FetchError:
    status = response.status
    reason = f"HTTP {status} {response.reason or ''}".strip()
    if status in RETRY_STATUSES:
        return FetchError(reason, retryable=True, status=status,
                          wait=retry_after(response.headers.get("Retry-After")))
    return FetchError(reason, retryable=False, status=status)


def classify(exc: BaseException) -> FetchError:
    """A network-level exception as a :class:`FetchError`."""
    if isinstance(exc, FetchError):
        return exc
    if isinstance(exc, aiohttp.TooManyRedirects):
        return FetchError("too many redirects (redirect loop?)", retryable=False)
    if isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlRedirectClientError):
        return FetchError(f"invalid URL: {exc}", retryable=False)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return FetchError(f"cannot connect: {exc.os_error.strerror or exc}", retryable=True, unreachable=True)
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return FetchError("timed out", retryable=True)
    if isinstance(exc, aiohttp.ClientPayloadError):
        return FetchError(f"body cut short: {exc}", retryable=True)
    if isinstance(exc, aiohttp.ClientError | OSError):
        return FetchError(f"{type(exc).__name__}: {exc}", retryable=True)
    raise exc


async def fetch_page(session: aiohttp.ClientSession, url: str) -> tuple[bytes, str, str | None]:
    """``(body, final_url, content_type)`` of an HTML page; redirects followed (at most 10)."""
    try:
        return await _fetch_page(session, url)
    except Exception as exc:
        raise classify(exc) from None


async def _fetch_page(session: aiohttp.ClientSession, url: str) -> tuple[bytes, str, str | None]:
    async with session.get(url, max_redirects=10) as response:
        if response.status != 200:
            raise _status_error(response)
        declared = response.content_length
        if declared is not None and declared > PAGE_MAX_BYTES:
            raise FetchError(f"page larger than {PAGE_MAX_BYTES} bytes", retryable=False)
        body = await _read_all(response, PAGE_MAX_BYTES + 1)
        if len(body) > PAGE_MAX_BYTES:
            raise FetchError(f"page larger than {PAGE_MAX_BYTES} bytes", retryable=False)
        if declared is not None and len(body) != declared and not response.headers.get("Content-Encoding"):
            raise FetchError(f"body cut short: {len(body)} of {declared} bytes", retryable=True)
        return body, str(response.url), response.content_type


async def _read_all(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body up to ``limit`` bytes; ``read(n)`` alone stops at the first chunk that arrives."""
    parts: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await response.content.read(limit - size)
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)


async def fetch_robots(session: aiohttp.ClientSession, origin: str) -> str | None:
    """robots.txt text; ``None`` (everything allowed) when the site has none or it is broken."""
    try:
        async with session.get(f"{origin}/robots.txt", max_redirects=5) as response:
            if response.status == 200:
                return (await _read_all(response, 512 * 1024)).decode("utf-8", errors="replace")
            return None
    except aiohttp.ClientConnectorError as exc:
        raise classify(exc) from None
    except (TimeoutError, aiohttp.ClientError, OSError):
        return None


def remove(path: str) -> None:
    """Deletes ``path`` if it exists (a temporary file, named by a plain string: no pathlib per file)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


@dataclass(slots=True)
class Download:
    temp: str
    sha256: str
    size: int
    content_type: str | None
    final_url: str


async def download(
    session: aiohttp.ClientSession,
    url: str,
    temp: str,
    *,
    max_bytes: int,
    type_allowed: Any,
    fsync: bool = False,
) -> Download:
    """Streams ``url`` into ``temp`` with every check; on any failure ``temp`` is removed."""
    digest = hashlib.sha256()
    size = 0
    try:
        async with session.get(url, max_redirects=10) as response:
            if response.status != 200:
                raise _status_error(response)
            content_type = response.content_type if "Content-Type" in response.headers else None
            if not type_allowed(content_type):
                raise FetchError(f"content type {content_type or 'missing'} not allowed", retryable=False)
            declared = response.content_length
            if response.headers.get("Content-Encoding"):
                declared = None  # the header counts compressed bytes; we hash what we store
            if declared is not None and declared > max_bytes:
                raise FetchError(f"larger than --max-bytes ({declared} > {max_bytes})", retryable=False)
            with open(temp, "wb") as handle:
                read = response.content.read  # read(n): no async-iterator layers per chunk
                while chunk := await read(CHUNK):
                    size += len(chunk)
                    if size > max_bytes:
                        raise FetchError(f"larger than --max-bytes ({max_bytes})", retryable=False)
                    digest.update(chunk)
                    handle.write(chunk)
                if fsync:
                    handle.flush()
                    os.fsync(handle.fileno())
            if declared is not None and size != declared:
                raise FetchError(f"body cut short: {size} of {declared} bytes", retryable=True)
            return Download(temp, digest.hexdigest(), size, content_type, str(response.url))
    except BaseException as exc:
        remove(temp)
        if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt | SystemExit):
            raise
        raise classify(exc) from None
