"""An embedded gallery site to crawl: pagination, detail pages, Pillow images, robots.txt,
hostile titles, and optional latency and faults. Tests, benchmarks and the demo use it.

Layout: ``/`` and ``/page/N`` are index pages with ``a.detail`` links to ``/item/ID`` and an
``a[rel=next]`` link to the next index page; an item page has ``h1`` (the title),
``img.photo`` (``/img/ID.jpg``) and ``p.caption``. robots.txt disallows ``/private/`` (each
index page has an ``a.detail`` link there) and sets a Crawl-delay. Faults, when on, hit a fraction of requests
(never robots.txt, at most ``max_faults_per_url`` times per URL): 429 with Retry-After in
seconds, 503 with Retry-After as an HTTP date, a body cut short, a connection reset, a body
sent slowly. ``traps`` adds a redirect loop and an over-large file to the first index page.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import html
import io
import random
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any

from aiohttp import web

HOSTILE_TITLES = [
    "../../etc/passwd", "CON", "nul.txt", "..", ".", "a" * 300, "\u00e9t\u00e9 " * 80, "\U0001f600" * 90,
    "tab\there\nnew\x00line\x1b[31m", "C:\\Windows\\system32", "<script>alert(1)</script>",
    "  spaced out  ...", "LPT1.jpg", "/absolute/path", "Ω≈ç√ normalised e\u0301",
]
FAULT_KINDS = ("429", "503", "truncate", "reset", "slow")


@dataclass
class SiteConfig:
    index_pages: int = 5
    per_page: int = 4
    latency_ms: float = 0.0
    faults: float = 0.0
    fault_kinds: tuple[str, ...] = FAULT_KINDS
    max_faults_per_url: int = 2
    retry_after: float = 1.0
    crawl_delay: float = 0.0
    image_px: int = 96
    duplicate_every: int = 0  # every Nth item shows the previous item's image bytes under its own URL
    hostile_every: int = 7  # every Nth item has a hostile title
    traps: bool = False
    huge_bytes: int = 8 << 20
    seed: int = 1

    @property
    def items(self) -> int:
        return self.index_pages * self.per_page


@dataclass
class Hit:
    time: float
    path: str
    outcome: str  # "ok" or the fault kind
    retry_at: float | None = None  # for 429/503: the earliest time the server allowed a retry


@dataclass
class DemoSite:
    config: SiteConfig = field(default_factory=SiteConfig)
    hits: list[Hit] = field(default_factory=list)
    record: bool = True  # keep a log of every request (tests); off for a long-running server
    _images: dict[int, bytes] = field(default_factory=dict)
    _faults: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._random = random.Random(self.config.seed)

    # ---- content ------------------------------------------------------------------------

    def title(self, item: int) -> str:
        every = self.config.hostile_every
        if every and item % every == every - 1:
            return HOSTILE_TITLES[(item // every) % len(HOSTILE_TITLES)]
        return f"Photo {item:05d}"

    def image_source(self, item: int) -> int:
        every = self.config.duplicate_every
        return item - 1 if every and item % every == every - 1 and item > 0 else item

    def image(self, item: int) -> bytes:
        """A small deterministic JPEG for ``item`` (cached: Pillow costs about a millisecond)."""
        source = self.image_source(item)
        cached = self._images.get(source)
        if cached is None:
            from PIL import Image, ImageDraw

            px = self.config.image_px
            rng = random.Random(source * 7919 + self.config.seed)
            picture = Image.new("RGB", (px, px * 3 // 4), tuple(rng.randrange(256) for _ in range(3)))
            draw = ImageDraw.Draw(picture)
            for _ in range(6):
                box = sorted(rng.randrange(px) for _ in range(2)), sorted(rng.randrange(px) for _ in range(2))
                draw.rectangle((box[0][0], box[1][0], box[0][1], box[1][1]),
                               fill=tuple(rng.randrange(256) for _ in range(3)))
            draw.text((4, 4), f"#{source}", fill=(255, 255, 255))
            buffer = io.BytesIO()
            picture.save(buffer, "JPEG", quality=85)
            cached = self._images[source] = buffer.getvalue()
        return cached

    def expected_files(self) -> dict[str, str]:
        """Image URL path -> sha256 of the bytes served there, for every normal item."""
        return {f"/img/{i}.jpg": hashlib.sha256(self.image(i)).hexdigest() for i in range(self.config.items)}

    def _index(self, number: int) -> str:
        cfg = self.config
        first = (number - 1) * cfg.per_page
        links = "".join(
            f'<li><a class="detail" href="/item/{i}">{html.escape(self.title(i))}</a></li>'
            for i in range(first, min(first + cfg.per_page, cfg.items))
        )
        nav = ""
        if number > 1:
            nav += f'<a rel="prev" href="/page/{number - 1}">previous</a> '
        if number < cfg.index_pages:
            nav += f'<a rel="next" class="next" href="/page/{number + 1}">next</a>'
        traps = ""
        if cfg.traps and number == 1:
            traps = ('<li><a class="detail" href="/loop/0">loop</a></li>'
                     '<li><a class="detail" href="/item/huge">huge</a></li>')
        return (f"<!doctype html><html><head><title>Gallery page {number}</title></head><body>"
                f"<h1>Gallery, page {number}</h1><ul>{links}{traps}</ul><nav>{nav}</nav>"
                f'<p><a class="detail" href="/private/admin">admin</a> '
                f'<a href="mailto:x@example.com">mail</a> '
                f'<a href="https://elsewhere.example/">elsewhere</a></p></body></html>')

    def _item(self, item: int | str) -> str:
        if item == "huge":
            title, src = "Huge file", "/huge.jpg"
        else:
            assert isinstance(item, int)
            title, src = self.title(item), f"/img/{item}.jpg"
        return (f"<!doctype html><html><head><title>{html.escape(title)}</title></head><body>"
                f'<p><a href="/">home</a></p><h1>{html.escape(title)}</h1>'
                f'<img class="photo" src="{src}" alt="{html.escape(title)}">'
                f'<p class="caption">Caption for {html.escape(str(item))}</p></body></html>')

    # ---- serving ------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/robots.txt", self._robots)
        app.router.add_get("/", self._page)
        app.router.add_get("/page/{n:\\d+}", self._page)
        app.router.add_get("/item/{id}", self._detail)
        app.router.add_get("/img/{id:\\d+}.jpg", self._img)
        app.router.add_get("/huge.jpg", self._huge)
        app.router.add_get("/loop/{n:\\d+}", self._loop)
        app.router.add_get("/private/{tail:.*}", self._private)
        return app

    async def _robots(self, request: web.Request) -> web.Response:
        await self._latency()
        self._hit(Hit(time.time(), request.path, "ok"))
        text = f"User-agent: *\nDisallow: /private/\nCrawl-delay: {self.config.crawl_delay:g}\n"
        return web.Response(text=text)

    async def _latency(self) -> None:
        if self.config.latency_ms:
            await asyncio.sleep(self.config.latency_ms / 1000)

    def _fault(self, path: str) -> str | None:
        cfg = self.config
        if not cfg.faults or self._faults[path] >= cfg.max_faults_per_url:
            return None
        if self._random.random() >= cfg.faults:
            return None
        self._faults[path] += 1
        return self._random.choice(cfg.fault_kinds)

    async def _respond(self, request: web.Request, body: bytes, content_type: str) -> web.StreamResponse:
        await self._latency()
        fault = self._fault(request.path)
        now = time.time()
        if fault in ("429", "503"):
            wait = self.config.retry_after
            if fault == "429":
                header = f"{wait:g}"
                retry_at = now + wait
            else:
                # An HTTP date has whole seconds: round up so the promise is never shorter than asked.
                retry_at = float(int(now + wait) + 1)
                header = formatdate(retry_at, usegmt=True)
            self._hit(Hit(now, request.path, fault, retry_at))
            return web.Response(status=int(fault), text="slow down", headers={"Retry-After": header})
        self._hit(Hit(now, request.path, fault or "ok"))
        if fault is None:
            return web.Response(body=body, content_type=content_type)
        response = web.StreamResponse(headers={"Content-Type": content_type})
        response.content_length = len(body)
        await response.prepare(request)
        if fault == "slow":
            step = max(1, len(body) // 8)
            try:
                for start in range(0, len(body), step):
                    await response.write(body[start:start + step])
                    await asyncio.sleep(0.02)
                await response.write_eof()
            except ConnectionError:
                pass  # the client gave up waiting
            return response
        await response.write(body[: len(body) // 2])
        transport = request.transport
        if transport is not None:
            if fault == "reset":
                sock = transport.get_extra_info("socket")
                if sock is not None:
                    # Linger 0 makes close() send RST: the client sees a reset, not a clean EOF.
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                transport.abort()
            else:
                transport.close()
        return response

    async def _page(self, request: web.Request) -> web.StreamResponse:
        number = int(request.match_info.get("n", "1"))
        if not 1 <= number <= self.config.index_pages:
            raise web.HTTPNotFound()
        return await self._respond(request, self._index(number).encode(), "text/html")

    async def _detail(self, request: web.Request) -> web.StreamResponse:
        raw = request.match_info["id"]
        if raw == "huge" and self.config.traps:
            return await self._respond(request, self._item("huge").encode(), "text/html")
        if not raw.isdigit() or int(raw) >= self.config.items:
            raise web.HTTPNotFound()
        return await self._respond(request, self._item(int(raw)).encode(), "text/html")

    async def _img(self, request: web.Request) -> web.StreamResponse:
        item = int(request.match_info["id"])
        if item >= self.config.items:
            raise web.HTTPNotFound()
        return await self._respond(request, self.image(item), "image/jpeg")

    async def _huge(self, request: web.Request) -> web.StreamResponse:
        """Streams ``huge_bytes`` of a repeating pattern, declared as an image."""
        await self._latency()
        self._hit(Hit(time.time(), request.path, "ok"))
        size = self.config.huge_bytes
        response = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
        response.content_length = size
        await response.prepare(request)
        block = hashlib.sha256(b"huge").digest() * 4096  # 128 KiB
        sent = 0
        try:
            while sent < size:
                chunk = block[: min(len(block), size - sent)]
                await response.write(chunk)
                sent += len(chunk)
            await response.write_eof()
        except ConnectionError:
            pass  # the client gave up on it (over its size limit): that is the point
        return response

    async def _loop(self, request: web.Request) -> web.Response:
        self._hit(Hit(time.time(), request.path, "ok"))
        number = int(request.match_info["n"])
        raise web.HTTPFound(f"/loop/{(number + 1) % 3}")

    async def _private(self, request: web.Request) -> web.Response:
        self._hit(Hit(time.time(), request.path, "ok"))
        return web.Response(text="robots.txt said no", content_type="text/html")

    def _hit(self, hit: Hit) -> None:
        if self.record:
            self.hits.append(hit)

    def count(self, path: str, outcome: str | None = None) -> int:
        return sum(1 for h in self.hits if h.path == path and (outcome is None or h.outcome == outcome))


async def start_site(site: DemoSite, host: str = "127.0.0.1", port: int = 0) -> tuple[web.AppRunner, str]:
    """Starts ``site`` on the running loop; returns the runner and the base URL (no trailing slash)."""
    runner = web.AppRunner(site.app(), access_log=None, handle_signals=False)
    await runner.setup()
    tcp = web.TCPSite(runner, host, port, backlog=1024)
    await tcp.start()
    server: Any = tcp._server
    bound = int(server.sockets[0].getsockname()[1])
    return runner, f"http://{host}:{bound}"


@contextlib.contextmanager
def serve_in_thread(site: DemoSite, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serves ``site`` from a background thread with its own loop; yields the base URL."""
    loop = asyncio.new_event_loop()
    ready: dict[str, object] = {}
    started = threading.Event()

    def main() -> None:
        asyncio.set_event_loop(loop)
        try:
            ready["value"] = loop.run_until_complete(start_site(site, host, port))
        except BaseException as exc:  # surface bind errors in the caller's thread
            ready["error"] = exc
            started.set()
            return
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=main, name="demo-site", daemon=True)
    thread.start()
    started.wait(30)
    if "error" in ready:
        raise ready["error"]  # type: ignore[misc]
    runner: web.AppRunner
    base: str
    runner, base = ready["value"]  # type: ignore[misc]
    try:
        yield base
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()
