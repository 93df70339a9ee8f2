"""The event loop a crawl runs on: uvloop's when it is installed, else asyncio's.

uvloop is libuv behind asyncio's interface, written in Cython. A crawl is mostly event-loop
work (a socket write, a read callback, a timer and a few task steps per request), and on
the benchmark's gallery uvloop takes about a quarter off the CPU time of a bare aiohttp GET
(0.32 -> 0.24 ms per request). It is optional: ``loop = "asyncio"`` (``--loop asyncio``,
``FIVEFOLD_CRAWL_LOOP=asyncio``) keeps the standard loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from fivefold._common.errors import UsageError

T = TypeVar("T")
LOOPS = ("auto", "uvloop", "asyncio")


def loop_factory(name: str = "auto") -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The factory for ``name``; ``None`` means asyncio's default loop."""
    if name not in LOOPS:
        raise UsageError(f"--loop: expected one of {', '.join(LOOPS)}, got {name!r}")
    if name == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if name == "uvloop":
            raise UsageError("--loop uvloop: uvloop is not installed (pip install uvloop)") from None
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T], loop: str = "auto") -> T:
    """``asyncio.run(main)`` on the chosen event loop."""
    with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
        return runner.run(main)
